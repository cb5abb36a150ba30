"""Tests for the DoIT loader (dynamics.data.formats.doit): layout, canonical fields, named problems.

Run: `python -m pytest -q tests/data/formats/test_doit.py`
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from format_helpers import check_options, load_format_rows

from dynamics.config import ConfigError, parse_config
from dynamics.data.formats.doit import DoitOptions
from dynamics.data.problems import LENIENT_HINT, DataError, ProblemLog
from dynamics.data.schema import to_table
from dynamics.sweep.plan import check_names

ALL_POOLS = ["curated/full", "curated/valid", "curated/test", "synthetic/40960"]


def _chat(*turns: str) -> list[dict[str, str]]:
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": text} for i, text in enumerate(turns)]


def _write(path: Path, lines: list[Any]) -> Path:
    """One JSON object per line; a str item is written verbatim (for broken lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A small DoIT tree: five abilities in curated/full, choice and answer items in curated/test."""
    full = tmp_path / "curated" / "full"
    _write(full / "ethics_full.json", [{"messages": _chat("Is it fair to skip the queue?", "Usually not.")}] * 2)
    _write(
        full / "role_play_full.json",
        [{"messages": _chat("Be a lighthouse keeper.", "The lamp is lit.", "Any ships?", "One, far to the west.")}],
    )
    _write(full / "creative_writing_full.json", [{"messages": _chat("A haiku on rain.", "Grey roofs hum softly")}])
    _write(
        full / "math_full.json",
        [
            {"messages": _chat("What is 6 times 7?", "6 times 7 is 42."), "answer": "42", "type": "math"},
            "",  # a blank line: the next record is still line 3
            {"messages": _chat("Half of 10?", "5")},
        ],
    )
    _write(full / "code_full.json", [{"messages": _chat("Reverse a list in Python.", "Use xs[::-1].")}])
    _write(
        tmp_path / "curated" / "valid" / "ethics_valid.json",
        [{"messages": _chat("May I read a friend's diary?", "Not without asking."), "type": "ethics"}],
    )
    test = tmp_path / "curated" / "test"
    _write(
        test / "ethics_test.json",
        [
            {
                "messages": _chat("Which reply is kindest?"),
                "question_format": 1,
                "choices": ["Offer help.", "Ignore them.", "Laugh."],
                "type": "ethics",
            },
        ],
    )
    _write(
        test / "math_test.json",
        [
            {"messages": _chat("Compute 3 + 4."), "question_format": 0, "answer": "7", "type": "math"},
            {"messages": _chat("Name an even prime.", "It is 2."), "type": "math"},
        ],
    )
    _write(
        tmp_path / "synthetic" / "40960" / "synthetic_40960.json",
        [{"messages": _chat("Suggest a name for a cat.", "Pepper.")}, {"messages": _chat("Say hi.", "Hi!")}],
    )
    return tmp_path


def _load(location: Path | str, log: ProblemLog | None = None, **options: Any) -> dict[str, dict[str, Any]]:
    sourced = load_format_rows("doit", location, log or ProblemLog(), **options)
    return {row["id"]: row for _, _, row in sourced}


def _error(location: Path, **options: Any) -> str:
    with pytest.raises(DataError) as caught:
        _load(location, **options)
    return str(caught.value)


def test_default_pools_are_curated_full_and_test(root: Path) -> None:
    rows = _load(root)
    assert {row_id.rsplit("/", 2)[0] for row_id in rows} == {"doit/curated/full", "doit/curated/test"}
    assert {row["split"] for row in rows.values()} == {"train", "test"}


def test_every_canonical_field_of_training_rows(root: Path) -> None:
    rows = _load(root, pools=ALL_POOLS)
    assert rows["doit/curated/full/role_play/000001"] == {
        "id": "doit/curated/full/role_play/000001",
        "source": "doit",
        "task": "role_play",
        "category": "role_play",
        "split": "train",
        "messages": _chat("Be a lighthouse keeper.", "The lamp is lit.", "Any ships?", "One, far to the west."),
        "references": ["One, far to the west."],  # the last reply
        "choices": None,
        "answer": None,
        "question_format": 0,
        "ability": None,  # a training record names no scorer
    }
    math = rows["doit/curated/full/math/000001"]
    assert (math["answer"], math["references"], math["task"], math["ability"]) == ("42", ["42"], "math", "math")
    assert rows["doit/curated/full/math/000003"]["references"] == ["5"]  # line numbers count the blank line
    assert rows["doit/curated/valid/ethics/000001"]["split"] == "valid"


def test_choice_item_without_reply_gets_the_gold_choice(root: Path) -> None:
    row = _load(root)["doit/curated/test/ethics/000001"]
    assert row["messages"] == _chat("Which reply is kindest?", "Offer help.")
    assert row["choices"] == ["Offer help.", "Ignore them.", "Laugh."]
    assert (row["question_format"], row["references"], row["answer"]) == (1, ["Offer help."], None)
    assert row["ability"] == "ethics"  # the record's `type`: the scorer it is scored by
    assert (row["task"], row["category"], row["split"]) == ("ethics", "ethics", "test")


def test_answer_item_without_reply_gets_the_answer(root: Path) -> None:
    rows = _load(root)
    prompt_only = rows["doit/curated/test/math/000001"]
    assert prompt_only["messages"] == _chat("Compute 3 + 4.", "7")
    assert (prompt_only["references"], prompt_only["answer"], prompt_only["question_format"]) == (["7"], "7", 0)
    with_reply = rows["doit/curated/test/math/000002"]
    assert with_reply["messages"] == _chat("Name an even prime.", "It is 2.")
    assert with_reply["references"] == ["It is 2."]


def test_synthetic_rows_have_no_ability(root: Path) -> None:
    rows = _load(root, pools=["synthetic/40960"])
    assert sorted(rows) == ["doit/synthetic/40960/synthetic/000001", "doit/synthetic/40960/synthetic/000002"]
    labels = {(row["task"], row["category"], row["split"]) for row in rows.values()}
    assert labels == {("synthetic", "synthetic", "train")}


def test_rows_fit_the_canonical_schema(root: Path) -> None:
    rows = _load(root, pools=ALL_POOLS)
    table = to_table(list(rows.values()), origin=str(root))
    assert table.num_rows == 13


def test_custom_split_mapping(root: Path) -> None:
    rows = _load(root, pools=["curated/valid"], split_of_pool={"curated/valid": "test"})
    assert {row["split"] for row in rows.values()} == {"test"}


def test_ids_do_not_depend_on_other_files(root: Path) -> None:
    before = _load(root)
    _write(root / "curated" / "full" / "aaa_first_full.json", [{"messages": _chat("x", "y")}])
    after = _load(root)
    assert all(after[row_id] == row for row_id, row in before.items())


# --- problems, named by file, line and field --------------------------------------------------------------

GOOD = {"messages": _chat("q", "a")}
BAD_RECORDS = [
    ('{"messages": [{"role": "user", "content": "tru', "", "truncated or malformed JSON line"),
    ({"answer": "4"}, "messages", "missing"),
    ({"messages": "hello"}, "messages", "expected list"),
    ({"messages": [{"role": "system", "content": "x"}, {"role": "assistant", "content": "y"}]}, "messages[0].role", ""),
    ({"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "y"}]}, "messages[0].content", ""),
    ({"messages": _chat("q", "a"), "question_format": 1, "choices": ["a", "b"]}, "choices", "exactly 3"),
    ({"messages": _chat("q", "a"), "question_format": 1, "choices": ["a", "b", 3]}, "choices", "list of strings"),
    ({"messages": _chat("q", "a"), "question_format": 1}, "choices", "list of strings"),
    ({"messages": _chat("q", "a"), "question_format": 2}, "question_format", "0 (generate) or 1"),
    ({"messages": _chat("q", "a"), "question_format": True}, "question_format", "0 (generate) or 1"),
    ({"messages": _chat("q", "a"), "answer": 42}, "answer", "expected a string"),
    ({"messages": _chat("q", "a"), "type": ["math"]}, "type", "expected a string"),
    ({"messages": _chat("q")}, "messages", "no 'answer'"),
    ({"messages": []}, "messages", "non-empty list"),
    ([1, 2], "", "expected a JSON object"),
]


@pytest.mark.parametrize(("bad", "field", "message"), BAD_RECORDS)
def test_bad_record_names_file_line_and_field(root: Path, bad: Any, field: str, message: str) -> None:
    path = _write(root / "curated" / "test" / "history_test.json", [GOOD, GOOD, bad])
    error = _error(root)
    assert error.startswith(f"{path}: line 3")
    if field:
        assert f"field '{field}'" in error
    assert message in error


def test_reply_less_record_is_a_problem_in_a_training_pool(root: Path) -> None:
    path = _write(root / "curated" / "full" / "history_full.json", [{"messages": _chat("q"), "answer": "a"}])
    expected = "ends with a user turn: nothing to train on in train pool 'curated/full'"
    assert _error(root) == f"{path}: line 1: field 'messages': {expected} {LENIENT_HINT}"


def test_non_utf8_line_names_the_line(root: Path) -> None:
    path = root / "curated" / "full" / "history_full.json"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"messages": "\xff\xfe"}\n')
    assert _error(root).startswith(f"{path}: line 2: not valid UTF-8")


def test_lenient_skips_and_records_every_bad_line(root: Path) -> None:
    path = _write(
        root / "curated" / "test" / "history_test.json",
        [GOOD, '{"messages": [', {"answer": "4"}, GOOD, {"messages": _chat("q", "a"), "question_format": 1}],
    )
    log = ProblemLog(lenient=True)
    rows = _load(root, log)
    assert "doit/curated/test/history/000001" in rows and "doit/curated/test/history/000004" in rows
    assert "doit/curated/test/history/000003" not in rows
    assert [(p.file, p.where, p.field) for p in log.skipped] == [
        (str(path), "line 2", ""),
        (str(path), "line 3", "messages"),
        (str(path), "line 5", "choices"),
    ]


def test_file_name_without_suffix_is_named(root: Path) -> None:
    path = _write(root / "curated" / "full" / "history.json", [GOOD])
    assert _error(root) == f"{path}: file name must be <ability>_<suffix>.json"


def test_missing_pool_folder_is_named(root: Path) -> None:
    error = _error(root, pools=["curated/1000"])
    assert error == f"{root / 'curated' / '1000'}: pool folder 'curated/1000' (options.pools) not found"


def test_missing_root_is_named(tmp_path: Path) -> None:
    assert "no such folder" in _error(tmp_path / "nowhere")


def test_hub_name_offline_is_a_named_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="not a local folder and not downloadable from the hub"):
        _load("nobody-here/no-such-doit-copy")


# --- options ------------------------------------------------------------------------------------------------


def test_unknown_pool_names_the_option() -> None:
    with pytest.raises(ValueError, match=r"pools[\s\S]*unknown pool\(s\) \['curated/ood'\]"):
        DoitOptions(pools=["curated/ood"])


def test_unknown_pool_is_a_config_error_naming_the_key(root: Path) -> None:
    raw = {
        "models": {"m": {"pretrained": "x"}},
        "grid": {"model": ["m"]},
        "data": {"source": "doit", "path": str(root), "options": {"pools": ["curated/full", "curated/ood"]}},
    }
    with pytest.raises(ConfigError, match=r"study.yaml: key 'data.options': .*options\.pools: .*\['curated/ood'\]"):
        check_names(parse_config(raw, origin="study.yaml"), origin="study.yaml")


def test_options_reject_unknown_keys_and_splits(root: Path) -> None:
    with pytest.raises(ValueError, match="pool"):
        check_options("doit", pool=["curated/full"])
    with pytest.raises(ValueError, match="splits must be one of"):
        DoitOptions(split_of_pool={"curated/full": "training"}, pools=["curated/full"])
    with pytest.raises(ValueError, match="listed twice"):
        DoitOptions(pools=["curated/full", "curated/full"])


# --- edge cases: empty files, a BOM, JSON list files ---------------------------------------------------------


@pytest.mark.parametrize("lenient", [False, True])
@pytest.mark.parametrize("pool", ["curated/test", "curated/valid"])
def test_empty_evaluation_file_is_an_error_naming_it(root: Path, pool: str, lenient: bool) -> None:
    split = pool.split("/")[1]
    path = root / pool / f"history_{split}.json"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        _load(root, ProblemLog(lenient=lenient), pools=["curated/full", pool])
    assert str(caught.value) == f"{path}: no records: ability 'history' would be missing from the {split} pool {pool!r}"


def test_empty_training_file_is_left_out_and_reported(root: Path) -> None:
    path = root / "curated" / "full" / "history_full.json"
    path.write_text("", encoding="utf-8")
    log = ProblemLog()
    rows = _load(root, log)
    assert not any(row_id.startswith("doit/curated/full/history/") for row_id in rows)
    assert [(p.file, p.message) for p in log.left_out] == [
        (str(path), "no records: ability 'history' of pool 'curated/full' left out")
    ]


def test_file_emptied_by_lenient_skips_is_not_called_empty(root: Path) -> None:
    _write(root / "curated" / "test" / "history_test.json", [{"answer": "no messages"}])
    log = ProblemLog(lenient=True)
    _load(root, log)
    assert [p.field for p in log.skipped] == ["messages"] and log.left_out == []


def test_bom_json_lines_file_loads_like_one_without(root: Path) -> None:
    path = root / "curated" / "full" / "math_full.json"
    before = _load(root)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert _load(root) == before


def test_json_list_file_keeps_0_based_ids_while_places_count_from_1(root: Path) -> None:
    path = root / "curated" / "full" / "history_full.json"
    path.write_text(json.dumps([GOOD, {"messages": []}]), encoding="utf-8")
    log = ProblemLog(lenient=True)
    rows = _load(root, log)
    assert "doit/curated/full/history/000000" in rows  # ids of list files never changed
    assert [(p.file, p.where) for p in log.skipped] == [(str(path), "row 2")]
