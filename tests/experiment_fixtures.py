"""Small local copies of every real dataset layout the experiment configs name, written in the layout each
config's header describes, so a config's own `data:` section (options, split files, sampling) is planned as is
with only `data.path` (and the paths inside it) pointed here. Imported as `experiment_fixtures` (pytest's
"prepend" mode puts this folder on the path).

NIV2 and ShareGPT come from the shared real samples (`SHARED`); the rest are generated here: no text of any real
dataset is copied into the repo.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NIV2_SAMPLE = SHARED / "niv2-sample"
SHAREGPT_SAMPLE = SHARED / "sharegpt-sample" / "sharegpt_sample.json"
DOIT_ABILITIES = (
    "biology", "chinese", "code", "creative_writing", "ethics",
    "history", "math", "reasoning", "role_play", "understanding",
)  # fmt: skip
CURATED_PER_ABILITY = 1000  # baseline (curated-10000) is 1000 per ability: every preset of Study A is whole
SYNTHETIC_POOL = 600
T0_HELD_OUT = ("super_glue_cb", "super_glue_rte", "anli", "winogrande", "hellaswag")


def _chat(*turns: str) -> list[dict[str, str]]:
    return [{"role": ("user", "assistant")[i % 2], "content": text} for i, text in enumerate(turns)]


def _jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")


def _json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")


def doit_tree(root: Path) -> dict[str, str]:
    """DoIT's layout: curated/{full,valid,test}/<ability>_<suffix>.json, synthetic/40960/, an OOD pool at
    ood/ceval/. Test items are single-choice questions (question_format 0) with their options in the prompt."""
    for ability in DOIT_ABILITIES:
        full = [
            {"messages": _chat(f"{ability} question {k}?", f"{ability} answer {k}.")}
            for k in range(CURATED_PER_ABILITY)
        ]
        _jsonl(root / "curated" / "full" / f"{ability}_full.json", full)
        for split, count in (("valid", 3), ("test", 4)):
            items = [
                {
                    "messages": _chat(f"{ability} {split} {k}: which?\nA. one\nB. two\nC. three\nD. four", "B"),
                    "question_format": 0,
                    "type": ability,
                }
                for k in range(count)
            ]
            _jsonl(root / "curated" / split / f"{ability}_{split}.json", items)
    synthetic = [{"messages": _chat(f"Write about topic {k}.", f"Text {k}.")} for k in range(SYNTHETIC_POOL)]
    _jsonl(root / "synthetic" / "40960" / "gpt4_40960.json", synthetic)
    question = "历史 {k}：哪个？\nA. 甲\nB. 乙\nC. 丙\nD. 丁"
    ood = [{"messages": _chat(question.format(k=k), "C"), "question_format": 0, "type": "history"} for k in range(4)]
    _jsonl(root / "ood" / "ceval" / "history_ceval.json", ood)
    return {"data.path": str(root)}


def flan_mini_tree(root: Path) -> dict[str, str]:
    """Flan-mini's JSON list of `{id, source, conversations}` and the study's split file."""
    train_tasks = [f"train_task_{t}" for t in range(8)]
    test_tasks = [f"eval_task_{t}" for t in range(3)]
    records = [
        {
            "id": f"{task}-{k}",
            "source": task,
            "conversations": [
                {"from": "human", "value": f"Instruction of {task}, input {k}."},
                {"from": "gpt", "value": f"Output {k} of {task}."},
            ],
        }
        for task in train_tasks + test_tasks
        for k in range(25)
    ]
    _json(root / "flan-mini" / "flan_mini.json", records)
    _json(root / "train_eval_key_list.json", {"train_key_list": train_tasks, "eval_key_list": test_tasks})
    return {"data.path": str(root / "flan-mini"), "data.options.split_file": str(root / "train_eval_key_list.json")}


def p3_tree(root: Path) -> dict[str, str]:
    """Native P3 rows (`inputs_pretokenized`, `targets_pretokenized`, `task_name`), one file per prompted task,
    with T0's held-out datasets among them."""
    tasks = [f"{name}_prompt_{p}" for name in ("glue_mrpc", "ag_news", "xsum", *T0_HELD_OUT) for p in range(2)]
    for task in tasks:
        rows = [
            {"inputs_pretokenized": f"{task} input {k}?", "targets_pretokenized": f"target {k}", "task_name": task}
            for k in range(12)
        ]
        _jsonl(root / "p3" / f"{task}.jsonl", rows)
    return {"data.path": str(root / "p3")}


def sharegpt_tree(root: Path) -> dict[str, str]:
    """The shared ShareGPT sample as the training file, and a held-out file of generated conversations."""
    held_out = [
        {
            "id": f"held-{k}",
            "conversations": [{"from": "human", "value": f"Q {k}?"}, {"from": "gpt", "value": f"R {k}."}],
        }
        for k in range(6)
    ]
    _json(root / "sharegpt" / "test.json", held_out)
    return {"data.path": str(SHAREGPT_SAMPLE), "data.test_source.path": str(root / "sharegpt" / "test.json")}


def norobots_tree(root: Path) -> dict[str, str]:
    """No Robots' local layout: train_sft / test_sft files of `{prompt, prompt_id, messages, category}`."""
    categories = ("Generation", "Open QA", "Brainstorm", "Rewrite")

    def rows(split: str, count: int) -> list[dict[str, Any]]:
        return [
            {
                "prompt": f"{split} prompt {k}",
                "prompt_id": f"{split}-{k}",
                "messages": _chat(f"{split} prompt {k}", f"{split} reply {k}"),
                "category": categories[k % len(categories)],
            }
            for k in range(count)
        ]

    _jsonl(root / "no_robots" / "train_sft.jsonl", rows("train", 80))
    _jsonl(root / "no_robots" / "test_sft.jsonl", rows("test", 8))
    return {"data.path": str(root / "no_robots")}


def niv2_tree(root: Path) -> dict[str, str]:
    """The shared NIV2 sample (tasks + split files, in the flat layout)."""
    return {"data.path": str(NIV2_SAMPLE)}


FIXTURES: dict[str, Callable[[Path], dict[str, str]]] = {
    "doit": doit_tree,
    "flan_mini": flan_mini_tree,
    "p3": p3_tree,
    "sharegpt": sharegpt_tree,
    "norobots": norobots_tree,
    "niv2": niv2_tree,
}
NEEDS_SHARED = {"niv2": NIV2_SAMPLE, "sharegpt": SHAREGPT_SAMPLE}
