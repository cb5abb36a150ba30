"""Dynamic padding: each micro-batch is padded only to its own longest example (SPEC §3 "do better")."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dynamics.text.encoding import IGNORE_INDEX, EncodedExample


def collate(examples: Sequence[EncodedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids / attention_mask / labels, (batch, longest) int64."""
    longest = max(len(example.input_ids) for example in examples)
    input_ids = torch.full((len(examples), longest), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), longest), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), longest), dtype=torch.long)
    for row, example in enumerate(examples):
        length = len(example.input_ids)
        input_ids[row, :length] = torch.tensor(example.input_ids)
        labels[row, :length] = torch.tensor(example.labels)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example sum of next-token NLL over target tokens and their count, each (batch,) float32.

    logits: (batch, length, vocab); labels: (batch, length) with IGNORE_INDEX outside targets.
    """
    shifted_logits = logits[:, :-1, :].float()
    shifted_labels = labels[:, 1:]
    mask = shifted_labels != IGNORE_INDEX
    nll = torch.nn.functional.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.size(-1)),
        shifted_labels.clamp(min=0).reshape(-1),
        reduction="none",
    ).view_as(shifted_labels)
    nll = nll * mask
    return nll.sum(dim=1), mask.sum(dim=1).float()


def predicting_columns(labels: torch.Tensor) -> torch.Tensor:
    """Columns whose next token is a target in some row, (K,) int64: the only logits a loss needs.

    Passed to a causal LM as `logits_to_keep`, so the vocabulary projection and its float32 logits cover K
    columns instead of the whole sequence (a 32k-vocabulary model's eval logits are otherwise GBs).
    """
    return (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)


def kept_token_nll(
    logits: torch.Tensor, labels: torch.Tensor, columns: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`token_nll` from logits of `columns` only: logits (batch, K, vocab) predict labels[:, columns + 1]."""
    targets = labels[:, columns + 1]  # (batch, K)
    mask = targets != IGNORE_INDEX
    nll = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), targets.clamp(min=0).reshape(-1), reduction="none"
    ).view_as(targets)
    nll = nll * mask
    return nll.sum(dim=1), mask.sum(dim=1).float()
