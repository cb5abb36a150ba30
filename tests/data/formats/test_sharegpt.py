"""Tests for the `sharegpt` format, on the shared real sample and on small fixtures written here.

Run: `python -m pytest -q tests/data/formats/test_sharegpt.py`
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from format_helpers import (
    SHARED_DATA,
    check_bad_record_named,
    check_options,
    load_bad_records_leniently,
    load_format,
    load_in_both_listing_orders,
)
from format_helpers import write_json as _write
from format_helpers import write_jsonl as _jsonl

from dynamics.data.problems import DataError
from dynamics.data.schema import CANONICAL_SCHEMA, to_table

SAMPLE = SHARED_DATA / "sharegpt-sample"
SAMPLE_FILE = SAMPLE / "sharegpt_sample.json"
needs_sample = pytest.mark.skipif(not SAMPLE_FILE.is_file(), reason=f"real sample not present at {SAMPLE}")

_load = partial(load_format, "sharegpt")


def _turn(speaker: str, text: str) -> dict[str, str]:
    return {"from": speaker, "value": text}


def _chat(index: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": f"chat{index}",
        "conversations": [_turn("human", f"Tell me fact {index}."), _turn("gpt", f"Fact {index} is true.")],
    }
    record.update(fields)
    return record


def _index(where: str) -> int:
    """The 0-based index in the source list of the record at `where` ("row 1" is the first record)."""
    assert where.startswith("row ")
    return int(where.split()[1]) - 1


def _unusable(record: dict[str, Any]) -> bool:
    """What the format must skip in the sample, decided from the raw record alone."""
    speakers = [turn["from"] for turn in record["conversations"]]
    return not speakers or "human" not in speakers or any(s not in ("human", "gpt", "system") for s in speakers)


@needs_sample
def test_real_sample_rows_keep_every_source_field() -> None:
    source = json.loads(SAMPLE_FILE.read_text(encoding="utf-8"))
    rows, log = _load(SAMPLE, lenient=True)
    expected_skips = [index for index, record in enumerate(source) if _unusable(record)]
    assert [_index(problem.where) for problem in log.skipped] == expected_skips
    assert all(problem.file == str(SAMPLE_FILE) for problem in log.skipped)
    assert len(rows) == len(source) - len(expected_skips)
    for file, where, row in rows:
        record = source[_index(where)]
        assert file == str(SAMPLE_FILE)
        assert row["id"] == record["id"]
        assert (row["source"], row["task"], row["category"], row["split"]) == ("sharegpt",) * 3 + ("train",)
        roles = [turn["role"] for turn in row["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2)
        reply = row["messages"][-1]["content"]
        assert row["references"] == [reply] and row["answer"] == reply and reply.strip()
        assert "choices" not in row and "question_format" not in row
    ids = [row["id"] for _, _, row in rows]
    assert len(set(ids)) == len(ids)
    assert to_table([row for _, _, row in rows], origin="sample").schema == CANONICAL_SCHEMA


@needs_sample
def test_real_sample_contents_equal_the_source_values() -> None:
    source = json.loads(SAMPLE_FILE.read_text(encoding="utf-8"))
    by_id = {row["id"]: row for _, _, row in _load(SAMPLE, lenient=True)[0]}

    def speakers(record: dict[str, Any]) -> list[str]:
        return [turn["from"] for turn in record["conversations"]]

    alternating = next(
        r for r in source if len(r["conversations"]) >= 4 and speakers(r) == ["human", "gpt"] * (len(speakers(r)) // 2)
    )
    values = [turn["value"] for turn in alternating["conversations"]]
    assert [turn["content"] for turn in by_id[alternating["id"]]["messages"]] == values
    assert by_id[alternating["id"]]["references"] == [values[-1]]

    # A part cut from a longer chat starts with a reply; that reply has no prompt here and is dropped.
    cut = next(r for r in source if speakers(r)[:2] == ["gpt", "human"])
    assert [turn["content"] for turn in by_id[cut["id"]]["messages"]] == [t["value"] for t in cut["conversations"][1:]]

    # Two human turns in a row become one user turn.
    def first_double_human(record: dict[str, Any]) -> int | None:
        said = speakers(record)
        return next((i for i in range(len(said) - 1) if said[i] == said[i + 1] == "human"), None)

    doubled = next(r for r in source if first_double_human(r) is not None)
    at = first_double_human(doubled)
    assert at is not None
    merged = "\n\n".join(t["value"] for t in doubled["conversations"][at : at + 2] if t["value"].strip())
    assert merged in [turn["content"] for turn in by_id[doubled["id"]]["messages"]]


@needs_sample
def test_real_sample_loads_identically_twice() -> None:
    first, _ = _load(SAMPLE, lenient=True)
    second, _ = _load(SAMPLE, lenient=True)
    assert first == second


@needs_sample
def test_real_sample_strict_names_the_first_unusable_row() -> None:
    source = json.loads(SAMPLE_FILE.read_text(encoding="utf-8"))
    first_bad = next(index for index, record in enumerate(source) if _unusable(record))
    with pytest.raises(DataError) as caught:
        _load(SAMPLE)
    message = str(caught.value)
    assert str(SAMPLE_FILE) in message and f"row {first_bad + 1}:" in message and "field 'conversations" in message


def test_roles_category_split_and_derived_ids(tmp_path: Path) -> None:
    records = [
        _chat(0),
        {"conversations": _chat(1)["conversations"], "category": "trivia"},
        {"conversations": _chat(2)["conversations"]},
    ]
    rows, _ = _load(_write(tmp_path / "chats.json", records), split="test")
    assert [row["id"] for _, _, row in rows] == ["chat0", "sharegpt-chats-1", "sharegpt-chats-2"]
    assert [(row["task"], row["category"]) for _, _, row in rows] == [
        ("sharegpt", "sharegpt"),
        ("trivia", "trivia"),
        ("sharegpt", "sharegpt"),
    ]
    assert {row["split"] for _, _, row in rows} == {"test"}
    assert rows[0][2]["messages"] == [
        {"role": "user", "content": "Tell me fact 0."},
        {"role": "assistant", "content": "Fact 0 is true."},
    ]


def test_system_turn_is_dropped_or_kept(tmp_path: Path) -> None:
    record = _chat(0)
    record["conversations"].insert(0, _turn("system", "Be brief."))
    path = _write(tmp_path / "chats.json", [record])
    dropped, _ = _load(path)
    kept, _ = _load(path, keep_system=True)
    assert dropped[0][2]["messages"][0]["content"] == "Tell me fact 0."
    assert kept[0][2]["messages"][0]["content"] == "Be brief.\n\nTell me fact 0."


def test_irregular_turns_are_normalised(tmp_path: Path) -> None:
    turns = [
        _turn("gpt", "(earlier reply)"),
        _turn("human", "First part."),
        _turn("human", "Second part."),
        _turn("gpt", "Reply one."),
        _turn("gpt", "Reply two."),
        _turn("human", "Unanswered."),
    ]
    rows, _ = _load(_write(tmp_path / "chats.json", [_chat(0, conversations=turns)]))
    assert rows[0][2]["messages"] == [
        {"role": "user", "content": "First part.\n\nSecond part."},
        {"role": "assistant", "content": "Reply one.\n\nReply two."},
    ]
    assert rows[0][2]["references"] == ["Reply one.\n\nReply two."]


BAD_RECORDS = {
    "missing conversations": ({"id": "x"}, "conversations", "missing"),
    "conversations not a list": (_chat(9, conversations="hello"), "conversations", "expected a list"),
    "value not a string": (
        _chat(9, conversations=[_turn("human", "q"), {"from": "gpt", "value": 7}]),
        "conversations[1].value",
        "expected str",
    ),
    "id not a string": (_chat(9, id=12), "id", "expected str"),
    "empty conversations": (_chat(9, conversations=[]), "conversations", "empty"),
    "no reply": (_chat(9, conversations=[_turn("human", "q")]), "conversations", "no assistant reply"),
    "only replies": (_chat(9, conversations=[_turn("gpt", "a")]), "conversations", "no user turn"),
    "unknown role": (
        _chat(9, conversations=[_turn("human", "q"), _turn("bard", "a")]),
        "conversations[1].from",
        "unknown role 'bard'",
    ),
    "late system turn": (
        _chat(9, conversations=[_turn("human", "q"), _turn("system", "s"), _turn("gpt", "a")]),
        "conversations[1].from",
        "only as the first turn",
    ),
    "empty final reply": (
        _chat(9, conversations=[_turn("human", "q"), _turn("gpt", " ")]),
        "conversations",
        "final assistant reply is empty",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_record_strict_names_file_row_and_field(tmp_path: Path, case: str) -> None:
    record, field, message = BAD_RECORDS[case]
    check_bad_record_named(_load, _write(tmp_path / "chats.json", [_chat(0), record]), field, message)


def test_bad_records_lenient_are_skipped_and_each_recorded(tmp_path: Path) -> None:
    rows = load_bad_records_leniently(_load, tmp_path / "chats.json", _chat(0), BAD_RECORDS, _chat(1))
    assert [row["id"] for _, _, row in rows] == ["chat0", "chat1"]


def test_listing_order_does_not_change_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def records(name: str) -> list[Any]:
        return [_chat(ord(name[0])), {"conversations": _chat(0)["conversations"]}]

    expected = load_in_both_listing_orders(_load, tmp_path, monkeypatch, ("a.json", "b.json"), records)
    assert [row["id"] for row in expected] == ["chat97", "sharegpt-a-1", "chat98", "sharegpt-b-1"]


def test_unknown_option_is_an_error_with_the_closest_option() -> None:
    with pytest.raises(ValueError, match="options.keep_sytem: .*did you mean 'keep_system'"):
        check_options("sharegpt", keep_sytem=True)


# ---- role variants: OpenAI-style keys and roles, any case --------------------------------------------------


def _openai(role: str, text: str) -> dict[str, str]:
    return {"role": role, "content": text}


@pytest.mark.parametrize(
    "turns",
    [
        [_openai("system", "Be brief."), _openai("user", "Tell me fact 0."), _openai("assistant", "Fact 0 is true.")],
        [
            {"From": "System", "Value": "Be brief."},
            {"FROM": "HUMAN", "VALUE": "Tell me fact 0."},
            {"from": "Gpt", "value": "Fact 0 is true."},
        ],
        [_turn("system", "Be brief."), _openai("User", "Tell me fact 0."), _turn("assistant", "Fact 0 is true.")],
    ],
    ids=["role+content", "any case", "mixed"],
)
def test_role_variants_load_exactly_like_human_and_gpt(tmp_path: Path, turns: list[dict[str, str]]) -> None:
    reference = _chat(0)
    reference["conversations"].insert(0, _turn("system", "Be brief."))
    expected = _load(_write(tmp_path / "reference.json", [reference]), keep_system=True)[0]
    rows, _ = _load(_write(tmp_path / "chats.json", [_chat(0, conversations=turns)]), keep_system=True)
    assert [row for _, _, row in rows] == [row for _, _, row in expected]
    dropped, _ = _load(tmp_path / "chats.json")
    assert dropped[0][2]["messages"][0] == {"role": "user", "content": "Tell me fact 0."}


ROLE_PROBLEMS = {
    "unknown role under role": (_chat(9, conversations=[_openai("user", "q"), _openai("tool", "a")]),
                                "conversations[1].role", "unknown role 'tool'"),
    "unknown role in capitals": (_chat(9, conversations=[_turn("human", "q"), _turn("BING", "a")]),
                                 "conversations[1].from", "unknown role 'BING'; expected one of ['assistant', 'gpt'"),
    "role not a string": (_chat(9, conversations=[_turn("human", "q"), {"from": 1, "value": "a"}]),
                          "conversations[1].from", "expected a role name (str), got int"),
    "no role key": (_chat(9, conversations=[_turn("human", "q"), {"speaker": "gpt", "value": "a"}]),
                    "conversations[1].from", "missing (expected one of 'from', 'role')"),
    "no content key": (_chat(9, conversations=[_turn("human", "q"), {"role": "assistant", "text": "a"}]),
                       "conversations[1].value", "missing (expected one of 'value', 'content')"),
    "late system turn": (_chat(9, conversations=[_openai("user", "q"), _openai("System", "s"), _openai("gpt", "a")]),
                         "conversations[1].role", "only as the first turn"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(ROLE_PROBLEMS))
def test_role_problem_strict_names_file_row_and_field(tmp_path: Path, case: str) -> None:
    record, field, message = ROLE_PROBLEMS[case]
    check_bad_record_named(_load, _write(tmp_path / "chats.json", [_chat(0), record]), field, message)


def test_role_problems_lenient_are_skipped_and_each_recorded(tmp_path: Path) -> None:
    rows = load_bad_records_leniently(_load, tmp_path / "chats.jsonl", _chat(0), ROLE_PROBLEMS, _chat(1), _jsonl)
    assert [row["id"] for _, _, row in rows] == ["chat0", "chat1"]
