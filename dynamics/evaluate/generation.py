"""Batched decoding of replies to evaluation prompts: left padding, KV cache, the template's stops, a token budget.

Hugging Face's `generate` does the decoding (greedy by default; sampling optional, seeded without touching the
training RNG). Prompts are sorted by length and cut into batches whose padding stays bounded, so a batch decodes
nearly as fast per row as its longest prompt allows. A reply stops at the template's end marker or at any role
marker (the model starting the next turn); single-token stops go to `eos_token_id`, longer ones to
`stop_strings`, and the text is cut before the first of them either way.

Sharded over a trial's ranks, every rank runs the same number of `generate` calls (a rank short of prompts
decodes a placeholder), and under ZeRO-3 `synced_gpus` keeps their forward passes paired until the slowest row
of any rank is done: each forward gathers parameters from all ranks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dynamics.evaluate.loss import RankShard
from dynamics.text.templates import Template


@dataclass(frozen=True)
class Decoding:
    """How replies are decoded: greedy unless `do_sample`; sampling is seeded by `seed` and the batch."""

    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class Generated:
    """One decoded reply."""

    token_ids: list[int]  # the reply's tokens, the stop token excluded
    text: str  # decoded, cut before the first stop text, stripped
    hit_budget: bool  # ran to max_new_tokens without reaching a stop
    first_logits: list[float] | None = None  # logits of the watched tokens at the reply's first position


@dataclass(frozen=True)
class Stops:
    """The template's stops for one tokenizer: token ids that end a reply at once, and longer texts."""

    token_ids: tuple[int, ...]
    texts: tuple[str, ...]  # every stop text, the single-token ones included, for cutting decoded text
    multi_token_texts: tuple[str, ...]

    @classmethod
    def of(cls, template: Template, tokenizer) -> Stops:
        texts = template.stop_texts(tokenizer)
        single, multi = [], []
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            (single if len(ids) == 1 else multi).append(ids[0] if len(ids) == 1 else text)
        if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in single:
            single.append(tokenizer.eos_token_id)  # a model trained elsewhere may still end with EOS
        return cls(tuple(single), texts, tuple(multi))


def left_padded(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), each (batch, longest) int64, padded on the left so every row ends together."""
    longest = max(len(prompt) for prompt in prompts)
    input_ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), longest), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            input_ids[row, longest - len(prompt) :] = torch.tensor(prompt)
            attention_mask[row, longest - len(prompt) :] = 1
    return input_ids, attention_mask


def _sampling_seed(seed: int, prompts: Sequence[Sequence[int]]) -> int:
    """A seed from the decoding seed and the batch's own tokens: the same batch samples the same replies."""
    digest = hashlib.sha256(repr((seed, [list(prompt) for prompt in prompts])).encode()).digest()
    return int.from_bytes(digest[:8], "little") % 2**63


class FirstPositionLogits:
    """A logits processor that keeps the watched tokens' scores at the first generated position and changes
    nothing: all a single-choice fallback needs, where `output_logits` would keep every step's whole vocabulary
    (batch × vocab × steps floats: half a GB for 8 replies of 512 tokens over 32k tokens)."""

    def __init__(self, watched_ids: Sequence[int]):
        self.watched = list(watched_ids)
        self.scores: torch.Tensor | None = None  # (batch, watched) float32 on the host

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.scores is None:
            self.scores = scores[:, self.watched].float().cpu()
        return scores


class KnownTokensOnly:
    """A logits processor that never lets the model pick an id the tokenizer cannot decode: checkpoints often
    pad their embedding rows past the tokenizer's vocabulary (to a multiple of 64, say), and those untrained rows
    would otherwise be generated (and fail to decode) now and then."""

    def __init__(self, vocabulary: int):
        self.vocabulary = vocabulary

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores[:, self.vocabulary :] = float("-inf")
        return scores


def _generation_config(decoding: Decoding, stops: Stops, pad_id: int):
    from transformers import GenerationConfig

    sampling = {"temperature": decoding.temperature, "top_p": decoding.top_p, "top_k": 0} if decoding.do_sample else {}
    # Built whole, so no setting of the model's own generation_config (a chat model's sampling defaults) leaks in.
    return GenerationConfig(
        max_new_tokens=decoding.max_new_tokens,
        do_sample=decoding.do_sample,
        eos_token_id=list(stops.token_ids),
        pad_token_id=pad_id,
        stop_strings=list(stops.multi_token_texts) or None,
        return_dict_in_generate=True,
        **sampling,
    )


def _reply(row_ids: list[int], tokenizer, stops: Stops, budget: int) -> Generated:
    ended = next((index for index, token in enumerate(row_ids) if token in stops.token_ids), None)
    kept = row_ids if ended is None else row_ids[:ended]
    text = tokenizer.decode(kept, skip_special_tokens=True)
    cut = min((text.find(stop) for stop in stops.texts if stop and stop in text), default=-1)
    if cut >= 0:
        text = text[:cut]
    return Generated(kept, text.strip(), hit_budget=ended is None and cut < 0 and len(row_ids) >= budget)


# no_grad, not inference_mode: under ZeRO-3 the parameters gathered for a forward pass would be inference tensors,
# and the next training step's backward refuses them ("Inference tensors cannot be saved for backward", measured).
@torch.no_grad()
def generate_batch(
    model,
    prompts: Sequence[Sequence[int]],
    tokenizer,
    stops: Stops,
    decoding: Decoding,
    watched_ids: Sequence[int] | None = None,
    synced: bool = False,
) -> list[Generated]:
    """Replies to `prompts` (token ids), decoded together; `watched_ids` adds their first-position logits.

    `model` is a causal LM (a DeepSpeed engine's `module`); `synced` runs ZeRO-3's paired forward passes.
    """
    input_ids, attention_mask = left_padded(prompts, tokenizer.pad_token_id)
    device = next(model.parameters()).device
    from transformers import LogitsProcessorList

    config = _generation_config(decoding, stops, tokenizer.pad_token_id)
    extra: dict = {"tokenizer": tokenizer} if stops.multi_token_texts else {}
    first = None if watched_ids is None else FirstPositionLogits(watched_ids)
    processors = [] if model.config.vocab_size <= len(tokenizer) else [KnownTokensOnly(len(tokenizer))]
    if first is not None:
        processors.append(first)
    if processors:
        extra["logits_processor"] = LogitsProcessorList(processors)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if decoding.do_sample:
            torch.manual_seed(_sampling_seed(decoding.seed, prompts))
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=config,
            synced_gpus=synced,
            **extra,
        )
    new_tokens = output.sequences[:, input_ids.size(1) :].tolist()  # (batch, generated) after the prompt
    replies = [_reply(row, tokenizer, stops, decoding.max_new_tokens) for row in new_tokens]
    if first is None:
        return replies
    assert first.scores is not None  # generate scores at least one position
    return [
        Generated(reply.token_ids, reply.text, reply.hit_budget, row)
        for reply, row in zip(replies, first.scores.tolist(), strict=True)
    ]


class ShardedGenerator:
    """Decodes a fixed list of prompts, this rank's share of them, in as many calls as the busiest rank makes."""

    def __init__(self, prompts: Sequence[Sequence[int]], batch_size: int, rank: int, world_size: int):
        if not prompts:
            raise ValueError("no prompts to generate replies for")
        self._shard = RankShard.of([len(prompt) for prompt in prompts], batch_size, rank, world_size)
        self.positions = self._shard.positions  # indices into `prompts` this rank decodes
        self._prompts = [list(prompt) for prompt in prompts]
        self._placeholder = [list(prompts[0])]

    def run(
        self, model, tokenizer, stops: Stops, decoding: Decoding, watched_ids=None, synced: bool = False
    ) -> list[Generated]:
        """This rank's replies, in the order of `self.positions`."""
        replies: list[Generated] = []
        for positions in self._shard.calls():
            chunk = [self._prompts[p] for p in positions]
            generated = generate_batch(
                model, chunk or self._placeholder, tokenizer, stops, decoding, watched_ids, synced
            )
            replies.extend(generated[: len(chunk)])
        return replies
