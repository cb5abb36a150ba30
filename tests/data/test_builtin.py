"""Tests for the built-in generated task data (dynamics.data.builtin)."""

from __future__ import annotations

import datetime
import io
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamics.data import builtin_vocab as vocab
from dynamics.data.builtin import TASKS, TaskSpec, check_registry, generate_builtin, task_examples
from dynamics.data.schema import CANONICAL_SCHEMA, validate_rows

REPO_ROOT = Path(__file__).resolve().parents[2]
SPECS = {spec.name: spec for spec in TASKS}


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return generate_builtin(per_train_task=6, per_test_task=4, seed=11)


def _parquet_bytes(t: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(t, buffer)
    return buffer.getvalue()


def _rows_by_task(t: pa.Table) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in t.to_pylist():
        grouped.setdefault(row["task"], []).append(row)
    return grouped


def _input_of(row: dict) -> str:
    return row["messages"][0]["content"].split("\n", 1)[1]


# --- registry ------------------------------------------------------------------------------------------


def test_registry_size_categories_and_phrasings() -> None:
    categories = {spec.category for spec in TASKS}
    splits = Counter(spec.split for spec in TASKS)
    assert len(categories) >= 9
    assert len(TASKS) >= 44
    assert 30 <= splits["train"] <= 40 and 8 <= splits["test"] <= 14
    assert len({spec.name for spec in TASKS}) == len(TASKS)
    for spec in TASKS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", spec.name), spec.name
        assert len(set(spec.phrasings)) >= 3, spec.name
        assert all("\n" not in phrasing for phrasing in spec.phrasings), spec.name
    check_registry(TASKS)


def test_relatives_and_test_only_category() -> None:
    test_tasks = [spec for spec in TASKS if spec.split == "test"]
    for spec in test_tasks:
        if spec.relative is not None:
            relative = SPECS[spec.relative]
            assert relative.split == "train" and relative.category == spec.category, spec.name
    assert all(spec.relative is None for spec in TASKS if spec.split == "train")
    assert sum(spec.relative is None for spec in test_tasks) >= 2
    assert sum(spec.relative is not None for spec in test_tasks) >= 6
    train_categories = {spec.category for spec in TASKS if spec.split == "train"}
    test_only = {spec.category for spec in test_tasks} - train_categories
    assert test_only, "some test category must have no train task"
    assert all(spec.relative is None for spec in test_tasks if spec.category in test_only)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda tasks: (*tasks, tasks[0]), "unique"),
        (lambda tasks: (*tasks, replace(tasks[0], name="Bad-Name")), "snake_case"),
        (lambda tasks: (*tasks, replace(tasks[0], name="extra", split="valid")), "split"),
        (lambda tasks: (*tasks, replace(tasks[0], name="extra", phrasings=("a", "a", "b"))), "phrasings"),
        (lambda tasks: (*tasks, replace(tasks[0], name="extra", relative="arithmetic_add")), "only test"),
        (
            lambda tasks: (*tasks, replace(tasks[0], name="extra", split="test", relative="list_max")),
            "category",
        ),
        (
            lambda tasks: (*tasks, replace(tasks[0], name="extra", split="test", relative="no_such_task")),
            "category",
        ),
    ],
)
def test_check_registry_rejects_broken_registries(change, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_registry(change(TASKS))


@pytest.mark.parametrize(("per_train", "per_test"), [(0, 3), (3, 0), (-1, 3), (2.5, 3), (True, 3)])
def test_counts_below_one_or_not_integers_are_rejected(per_train, per_test) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate_builtin(per_train, per_test, seed=0)


def test_vocabulary_lookups_are_unambiguous() -> None:
    # Replies are scored by exact match, so every question must have exactly one right answer.
    for table_rows in (vocab.ANTONYMS, vocab.PLURALS, vocab.PAST_TENSES, vocab.DEGREES):
        keys = [row[0] for row in table_rows]
        assert len(set(keys)) == len(keys)
    names = [country.name for country in vocab.COUNTRIES]
    capitals = [country.capital for country in vocab.COUNTRIES]
    assert len(set(names)) == len(names) and len(set(capitals)) == len(capitals)
    assert not set(vocab.CITIES) & set(capitals)
    assert all(re.fullmatch("[a-z]+", word) for word in vocab.WORDS)


# --- table shape and determinism -------------------------------------------------------------------------


def test_rows_fit_the_canonical_schema(table: pa.Table) -> None:
    assert table.schema == CANONICAL_SCHEMA
    rows = table.to_pylist()
    validate_rows(rows, origin="test")
    assert len({row["id"] for row in rows}) == len(rows)
    for row in rows:
        spec = SPECS[row["task"]]
        user, assistant = row["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        phrasing, _, text = user["content"].partition("\n")
        assert phrasing in spec.phrasings and text
        assert row["answer"] == assistant["content"] == row["references"][0]
        assert len(set(row["references"])) == len(row["references"])
        assert row["source"] == "builtin" and row["category"] == spec.category and row["split"] == spec.split
        assert row["choices"] is None and row["question_format"] == 0
        assert re.fullmatch(rf"builtin/{spec.name}/\d{{5}}", row["id"])


def test_counts_and_order(table: pa.Table) -> None:
    splits = Counter(table.column("split").to_pylist())
    n_train = sum(spec.split == "train" for spec in TASKS)
    assert splits == {"train": 6 * n_train, "test": 4 * (len(TASKS) - n_train)}
    expected_ids = [f"builtin/{spec.name}/{k:05d}" for spec in TASKS for k in range(6 if spec.split == "train" else 4)]
    assert table.column("id").to_pylist() == expected_ids


def test_same_seed_gives_identical_table(table: pa.Table) -> None:
    again = generate_builtin(per_train_task=6, per_test_task=4, seed=11)
    assert again.equals(table)
    assert _parquet_bytes(again) == _parquet_bytes(table)


def test_different_seed_gives_different_data(table: pa.Table) -> None:
    other = generate_builtin(per_train_task=6, per_test_task=4, seed=12)
    assert not other.equals(table)
    pairs = zip(other.column("messages").to_pylist(), table.column("messages").to_pylist(), strict=True)
    changed = sum(a != b for a, b in pairs)
    assert changed > len(table) // 2


def test_reordering_or_subsetting_the_registry_keeps_each_task_unchanged(table: pa.Table) -> None:
    reordered = generate_builtin(6, 4, seed=11, tasks=tuple(reversed(TASKS)))
    subset = generate_builtin(6, 4, seed=11, tasks=TASKS[5:9])
    original = _rows_by_task(table)
    assert _rows_by_task(reordered) == original
    assert _rows_by_task(subset) == {spec.name: original[spec.name] for spec in TASKS[5:9]}


def test_data_does_not_depend_on_python_hash_salt() -> None:
    script = (
        "import hashlib, io, pyarrow.parquet as pq\n"
        "from dynamics.data.builtin import generate_builtin\n"
        "buf = io.BytesIO(); pq.write_table(generate_builtin(3, 2, seed=5), buf)\n"
        "print(hashlib.sha256(buf.getvalue()).hexdigest())\n"
    )
    digests = set()
    for salt in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": salt}
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
        )
        digests.add(done.stdout.strip())
    assert len(digests) == 1


def test_small_input_space_still_yields_every_example() -> None:
    # Seven weekdays times three phrasings: 21 distinct pairs, far fewer than asked for.
    examples = task_examples(SPECS["calendar_next_day"], 100, seed=3)
    assert len(examples) == 100
    assert len(set(examples)) == 21


@pytest.mark.parametrize("name", ["arithmetic_add", "list_sort_ascending", "extract_email", "logic_compare"])
def test_large_input_space_has_no_duplicates(name: str) -> None:
    examples = task_examples(SPECS[name], 200, seed=3)
    assert len(set(examples)) == 200


def test_texts_stay_short() -> None:
    rows = generate_builtin(per_train_task=20, per_test_task=20, seed=1).to_pylist()
    user_lengths = [len(row["messages"][0]["content"]) for row in rows]
    assert sum(40 <= n <= 160 for n in user_lengths) >= 0.95 * len(rows)
    assert max(user_lengths) <= 200
    assert all(1 <= len(row["answer"]) <= 40 for row in rows)


def test_alternatives_are_offered_where_natural(table: pa.Table) -> None:
    grouped = _rows_by_task(table)
    for row in grouped["list_sort_ascending"]:
        assert f"[{row['answer']}]" in row["references"]
    for row in grouped["facts_currency"]:
        assert row["references"] == [row["answer"], f"the {row['answer']}"]
    assert all(row["references"] == [row["answer"]] for row in grouped["arithmetic_add"])


# --- replies recomputed independently ------------------------------------------------------------------


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", text)]


def _days_in(month_name: str, year: int) -> int:
    month = vocab.MONTHS.index(month_name) + 1
    first = datetime.date(year, month, 1)
    following = datetime.date(year + month // 12, month % 12 + 1, 1)
    return (following - first).days


CHECKS = {
    "arithmetic_add": lambda x: str(sum(_numbers(x))),
    "arithmetic_add_three": lambda x: str(sum(_numbers(x))),
    "arithmetic_subtract": lambda x: str(_numbers(x)[0] - _numbers(x)[1]),
    "arithmetic_multiply": lambda x: str(_numbers(x)[0] * _numbers(x)[1]),
    "arithmetic_divide": lambda x: str(_numbers(x)[0] // _numbers(x)[1]),
    "string_reverse": lambda x: "".join(reversed(x)),
    "string_uppercase": str.upper,
    "string_lowercase": str.lower,
    "string_length": lambda x: str(len(x)),
    "string_count_vowels": lambda x: str(len(re.findall("[aeiou]", x))),
    "list_sort_ascending": lambda x: ", ".join(map(str, sorted(_numbers(x)))),
    "list_sort_descending": lambda x: ", ".join(map(str, sorted(_numbers(x))[::-1])),
    "list_max": lambda x: str(max(_numbers(x))),
    "list_min": lambda x: str(min(_numbers(x))),
    "list_sum": lambda x: str(sum(_numbers(x))),
    "list_count": lambda x: str(x.count(",") + 1),
    "list_dedupe": lambda x: ", ".join(dict.fromkeys(x.split(", "))),
    # The expression is our own generated text made of True/False/and/or/not and parentheses only.
    "logic_boolean": lambda x: str(eval(x, {"__builtins__": {}})),
    "logic_parity": lambda x: ("odd", "even")[int(x) % 2 == 0],
    "logic_compare": lambda x: str(max(_numbers(x))),
    "logic_divisible": lambda x: "yes" if _numbers(x)[0] % _numbers(x)[1] == 0 else "no",
    "logic_sequence_next": lambda x: str(2 * _numbers(x)[-1] - _numbers(x)[-2]),
    "calendar_days_in_month": lambda x: str(_days_in(x.split()[0], int(x.split()[1]))),
    "calendar_next_month": lambda x: vocab.MONTHS[(vocab.MONTHS.index(x) + 1) % 12],
    "calendar_previous_day": lambda x: vocab.WEEKDAYS[vocab.WEEKDAYS.index(x) - 1],
    "extract_year": lambda x: re.search(r"\b\d{4}\b", x).group(),
    "extract_email": lambda x: re.search(r"[\w.]+@[\w.]*\w", x).group(),
    "units_time": lambda x: str(_numbers(x)[0] * {"hours": 60, "minutes": 60, "days": 24, "weeks": 7}[x.split()[1]]),
}


@pytest.mark.parametrize("name", ["sentiment_movie", "sentiment_restaurant", "sentiment_hotel", "sentiment_product"])
def test_sentiment_label_matches_the_review_words(name: str) -> None:
    examples = task_examples(SPECS[name], 60, seed=2)
    assert {reply for _, reply in examples} == {"positive", "negative"}
    for user, reply in examples:
        words = set(re.findall(r"[a-z]+", user.split("\n", 1)[1]))
        assert bool(words & set(vocab.POSITIVE_ADJECTIVES)) == (reply == "positive"), user
        assert bool(words & set(vocab.NEGATIVE_ADJECTIVES)) == (reply == "negative"), user


def test_logic_boolean_covers_both_answers_and_nesting() -> None:
    examples = task_examples(SPECS["logic_boolean"], 100, seed=0)
    assert {reply for _, reply in examples} == {"True", "False"}
    assert any("(" in user for user, _ in examples) and any("not" in user for user, _ in examples)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**63))
def test_replies_are_correct_for_any_seed(seed: int) -> None:
    for name, expected in CHECKS.items():
        for user, reply in task_examples(SPECS[name], 8, seed):
            text = user.split("\n", 1)[1]
            assert reply == expected(text), (name, user)


PINNED_FIRST_ADD = ("Add the two numbers and reply with the sum only.\n127 + 463", "590")


def test_first_example_is_pinned() -> None:
    # A golden value: a change here means every dataset built from seed 0 changed, which must be deliberate.
    user, reply = task_examples(SPECS["arithmetic_add"], 1, seed=0)[0]
    assert (user, reply) == PINNED_FIRST_ADD


def test_custom_task_spec_is_accepted() -> None:
    spec = TaskSpec(
        name="echo_word",
        category="string_manipulation",
        split="test",
        phrasings=("Repeat the word below exactly.", "Echo this word back.", "Say the word again."),
        generate=lambda rng: (w := rng.choice(vocab.WORDS), w),
        relative="string_reverse",
    )
    t = generate_builtin(2, 3, seed=0, tasks=(SPECS["string_reverse"], spec))
    assert t.column("task").to_pylist() == ["string_reverse"] * 2 + ["echo_word"] * 3
    assert all(_input_of(row) == row["answer"] for row in t.to_pylist() if row["task"] == "echo_word")
