"""Study A's per-ability scores inside the loop (SPEC §4): each DoIT item scored by its own rule, summed per ability.

Items that ask for a reply (`question_format` 0) are decoded once, with the option letters' logits at the first
reply position kept for single-choice items whose reply names no letter; items that rank choices
(`question_format` 1) are scored by the mean NLL of each choice as the reply, through the same sharded forward
passes as the test loss. Each rank scores its share of the items; the per-ability sums of score, chance and count
are all-reduced, so every rank reports `test_ability/<ability>` (percent of the items present),
`test_ability_chance/<ability>`, and `/overall`, the mean over abilities.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

from dynamics.evaluate.abilities import (
    Rule,
    ScoredItem,
    ability_percentages,
    chance_of,
    letter_variants,
    rule_of,
    score_perplexity,
    score_reply,
)
from dynamics.evaluate.generation import Decoding, ShardedGenerator, Stops
from dynamics.evaluate.loss import ExampleNll
from dynamics.evaluate.subsets import stratified_subset
from dynamics.text.encoding import Truncation, encode
from dynamics.text.prompts import encode_prompt, last_reply_index
from dynamics.text.templates import Template


def scored_item(row: dict) -> ScoredItem:
    """The scorer's view of a canonical test row: its `ability` (DoIT's `type`), else its task."""
    return ScoredItem.from_messages(
        row["messages"],
        row.get("ability") or row["task"],
        int(row.get("question_format") or 0),
        row.get("answer"),
        row.get("choices"),
    )


def _with_reply(messages: Sequence[dict], reply: str) -> list[dict]:
    context = list(messages[: last_reply_index(messages)])
    return [*context, {"role": "assistant", "content": reply}]


class AbilityEvaluator:
    """Per-ability scores of a fixed set of test rows (id, task, messages, ability, question_format, …)."""

    def __init__(
        self,
        rows: Sequence[dict],
        tokenizer,
        template: Template,
        max_length: int,
        truncation: Truncation,
        subset: int | None,
        seed: int,
        batch_size: int,
        eval_batch_size: int,
        rank: int,
        world_size: int,
        prefix: str = "test",
    ):
        if not rows:
            raise ValueError(f"the {prefix} set is empty: no ability to score")
        self.prefix = prefix
        chosen = stratified_subset([row["id"] for row in rows], [row["task"] for row in rows], subset, seed)
        rows = [rows[position] for position in chosen]
        self.items = [scored_item(row) for row in rows]
        self.abilities = sorted({row["task"] for row in rows})
        self._ability_row = [self.abilities.index(row["task"]) for row in rows]
        self._chances = [chance_of(item) for item in self.items]
        generating = [index for index, item in enumerate(self.items) if rule_of(item) is not Rule.PERPLEXITY_CHOICE]
        ranking = [index for index, item in enumerate(self.items) if rule_of(item) is Rule.PERPLEXITY_CHOICE]
        self._variants = letter_variants(tokenizer)
        self._watched = sorted({token for ids in self._variants.values() for token in ids})
        self._generating = generating
        self._generator = None
        if generating:
            prompts = [
                encode_prompt(rows[i]["messages"], tokenizer, template, max_length, truncation) for i in generating
            ]
            self._generator = ShardedGenerator(prompts, batch_size, rank, world_size)
        self._choices: list[tuple[int, int]] = []  # (item, choice) of each choice example
        examples = []
        for index in ranking:
            for choice_index, choice in enumerate(self.items[index].choices or []):
                example = encode(
                    _with_reply(rows[index]["messages"], choice), tokenizer, template, max_length, truncation
                )
                if example is None:
                    raise ValueError(
                        f"test item {rows[index]['id']}: choice {choice_index} keeps no token at max_length"
                    )
                examples.append(example)
                self._choices.append((index, choice_index))
        self._ranking = ranking
        self._nll = (
            ExampleNll(examples, eval_batch_size, rank, world_size, tokenizer.pad_token_id) if examples else None
        )
        self._rank, self._world_size = rank, world_size

    def evaluate(
        self, model, forward, tokenizer, stops: Stops, decoding: Decoding, synced: bool = False
    ) -> dict[str, float]:
        """Score this rank's items, reduce per ability over the ranks; `forward` as for the test loss."""
        sums = torch.zeros((len(self.abilities), 3), dtype=torch.float64)  # (abilities, [score, chance, count])

        def add(index: int, score: float) -> None:
            sums[self._ability_row[index]] += torch.tensor([score, self._chances[index], 1.0], dtype=torch.float64)

        if self._generator is not None:
            replies = self._generator.run(model, tokenizer, stops, decoding, self._watched, synced)
            column = {token: position for position, token in enumerate(self._watched)}
            for position, reply in zip(self._generator.positions, replies, strict=True):
                index = self._generating[position]
                assert reply.first_logits is not None  # watched ids were passed
                letters = {
                    letter: max(reply.first_logits[column[token]] for token in ids)
                    for letter, ids in self._variants.items()
                }
                add(index, score_reply(self.items[index], reply.text, letters))
        if self._nll is not None:
            means = self._nll.mean_nll(forward).tolist()  # every choice's, on every rank
            per_item: dict[int, list[float]] = {}
            for (index, _), mean in zip(self._choices, means, strict=True):
                per_item.setdefault(index, []).append(mean)
            for order, index in enumerate(self._ranking):
                if order % self._world_size == self._rank:  # each item counted on one rank only
                    add(index, score_perplexity(self.items[index], per_item[index]))
        if self._world_size > 1:  # on the model's device: NCCL reduces no CPU tensor
            on_device = sums.to(next(model.parameters()).device)
            dist.all_reduce(on_device, op=dist.ReduceOp.SUM)
            sums = on_device.cpu()
        totals = {ability: tuple(row) for ability, row in zip(self.abilities, sums.tolist(), strict=True)}
        return {f"{self.prefix}_{key}": value for key, value in ability_percentages(totals).items()}
