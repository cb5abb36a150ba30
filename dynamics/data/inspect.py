"""`dynamics data inspect`: what a config's data is — counts per split / task / category, lengths in tokens
under the training template, and where the normalised cache lives.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from dynamics.text.encoding import Truncation, encode
from dynamics.text.templates import Template

PERCENTILES = (50, 90, 99, 100)
PROGRESS_FROM_ROWS = 5_000  # smaller tables tokenise in well under a second


@dataclass(frozen=True)
class DataSummary:
    rows: int
    per_split: dict[str, int]
    per_task: dict[tuple[str, str], int]  # (split, task) → rows
    per_category: dict[tuple[str, str], int]
    token_percentiles: dict[str, dict[int, int]]  # split → percentile → tokens
    reply_cut: dict[str, int]  # split → examples whose reply truncation cuts (the prompt is cut first)
    dropped_by_truncation: dict[str, int]  # split → examples left without a target token


def summarise(
    table: pa.Table,
    tokenizer,
    template: Template,
    max_length: int,
    truncation: Truncation = Truncation(),  # noqa: B008 (frozen)
) -> DataSummary:
    """Counts and token-length percentiles of a canonical table (lengths before truncation), and what
    truncation at `max_length` would do to each split."""
    splits = table.column("split").to_pylist()
    tasks = table.column("task").to_pylist()
    categories = table.column("category").to_pylist()
    lengths: dict[str, list[int]] = {}
    dropped: Counter[str] = Counter()
    reply_cut: Counter[str] = Counter()
    messages = table.column("messages").to_pylist()
    rows = tqdm(messages, desc="tokenising", unit="row", disable=len(messages) < PROGRESS_FROM_ROWS)
    for split, conversation in zip(splits, rows, strict=True):
        full = encode(conversation, tokenizer, template, max_length=10**9)
        length = len(full.input_ids) if full is not None else 0
        lengths.setdefault(split, []).append(length)
        cut = encode(conversation, tokenizer, template, max_length, truncation)
        if cut is None:
            dropped[split] += 1
        else:
            reply_cut[split] += cut.reply_tokens_cut > 0
    return DataSummary(
        rows=table.num_rows,
        per_split=dict(sorted(Counter(splits).items())),
        per_task=dict(sorted(Counter(zip(splits, tasks, strict=True)).items())),
        per_category=dict(sorted(Counter(zip(splits, categories, strict=True)).items())),
        token_percentiles={
            split: {p: int(np.percentile(values, p)) for p in PERCENTILES} for split, values in sorted(lengths.items())
        },
        reply_cut=dict(reply_cut),
        dropped_by_truncation=dict(dropped),
    )


def format_summary(summary: DataSummary, cache_path: str | None, max_length: int) -> str:
    lines = [f"rows: {summary.rows}", "per split: " + ", ".join(f"{s} {n}" for s, n in summary.per_split.items())]
    lines.append(f"tokens per example (template included), percentiles {PERCENTILES}:")
    for split, values in summary.token_percentiles.items():
        dropped = summary.dropped_by_truncation.get(split, 0)
        cut = summary.reply_cut.get(split, 0)
        lines.append(
            f"  {split}: "
            + " / ".join(str(values[p]) for p in PERCENTILES)
            + f"   (at max_length {max_length}: {cut} replies cut, {dropped} examples without a reply token)"
        )
    lines.append("per category:")
    lines += [f"  {split:5s} {category}: {n}" for (split, category), n in summary.per_category.items()]
    lines.append(f"per task ({len(summary.per_task)}):")
    lines += [f"  {split:5s} {task}: {n}" for (split, task), n in summary.per_task.items()]
    lines.append(f"cache: {cache_path or 'none (the built-in generator is not cached)'}")
    return "\n".join(lines)
