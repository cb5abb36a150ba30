"""Built-in multi-task instruction data, generated here from code, so the offline study needs no download.

Tasks come in categories (one ability each). Most test tasks have a close relative among the train tasks
(same category, same input shape), a few have none, and one category exists only in test, so training-data
similarity to the test set varies in a way the arrangement stage can measure. Configs reach it as the data
source `builtin` (`dynamics.data.formats.builtin`).

    from dynamics.data.builtin import generate_builtin
    table = generate_builtin(per_train_task=20, per_test_task=5, seed=0)  # canonical schema, origin "builtin"
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from dynamics.config import SYNTHETIC  # the stand-in's task and category: DoIT's pool has no ability labels
from dynamics.data import builtin_tasks as gen
from dynamics.data.schema import to_table
from dynamics.ids import stable_seed

SOURCE = "builtin"
TASK_SPLITS = ("train", "test")
# Draws per example before a duplicate (user, reply) pair is accepted: tasks such as "next month" have
# fewer distinct pairs than a large per-task count, and generation must still end.
MAX_ATTEMPTS = 20

_NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


@dataclass(frozen=True)
class TaskSpec:
    """One built-in task: how to draw an (input, reply) pair and how to ask for it."""

    name: str  # unique snake_case id, also the RNG seed key
    category: str  # the ability this task exercises
    split: str  # "train" or "test"
    phrasings: tuple[str, ...]  # instructions; the user turn is one of them, a newline, then the input
    generate: Callable[[random.Random], tuple[str, str]]  # draws (input, reply) from the RNG
    relative: str | None = None  # closest train task of a test task, or None if it has no relative
    alternatives: Callable[[str], tuple[str, ...]] | None = None  # other accepted spellings of a reply


def _t(
    name: str,
    category: str,
    split: str,
    phrasings: tuple[str, ...],
    relative: str | None = None,
    alternatives: Callable[[str], tuple[str, ...]] | None = None,
) -> TaskSpec:
    # The generator function in builtin_tasks carries the task's name, which keeps the two in step.
    return TaskSpec(name, category, split, phrasings, getattr(gen, name), relative, alternatives)


# One task per call with its phrasings beneath: easier to review than one argument a line.
# fmt: off
TASKS: tuple[TaskSpec, ...] = (
    # arithmetic
    _t("arithmetic_add", "arithmetic", "train", (
        "Add the two numbers and reply with the sum only.",
        "What is the result of this addition? Give just the number.",
        "Compute the following sum and write the answer as digits.",
    )),
    _t("arithmetic_subtract", "arithmetic", "train", (
        "Subtract the second number from the first and reply with the result.",
        "What is the difference below? Give just the number.",
        "Work out this subtraction and write the answer as digits.",
    )),
    _t("arithmetic_multiply", "arithmetic", "train", (
        "Multiply the two numbers and reply with the product only.",
        "What is the result of this multiplication? Give just the number.",
        "Compute the following product and write the answer as digits.",
    )),
    _t("arithmetic_divide", "arithmetic", "train", (
        "Divide the first number by the second and reply with the quotient.",
        "What is the result of this division? Give just the number.",
        "Work out this exact division and write the answer as digits.",
    )),
    _t("arithmetic_add_three", "arithmetic", "test", (
        "Add the three numbers and reply with the total only.",
        "What is the result of this addition of three terms? Give just the number.",
        "Compute the following sum and write the answer as digits.",
    ), relative="arithmetic_add"),
    # string manipulation
    _t("string_reverse", "string_manipulation", "train", (
        "Write the following word backwards, letter by letter.",
        "Reverse the order of the letters in this word.",
        "Spell the word below from its last letter to its first.",
    )),
    _t("string_uppercase", "string_manipulation", "train", (
        "Rewrite the following text in capital letters.",
        "Convert every letter of this text to uppercase.",
        "Return the text below with all letters uppercased.",
    )),
    _t("string_length", "string_manipulation", "train", (
        "How many letters does the following word have?",
        "Count the letters in this word and reply with the number.",
        "Give the length of the word below, in letters.",
    )),
    _t("string_count_vowels", "string_manipulation", "train", (
        "How many vowels (a, e, i, o, u) are in this word?",
        "Count the vowels in the following word and reply with the number.",
        "Give the number of letters a, e, i, o or u in the word below.",
    )),
    _t("string_lowercase", "string_manipulation", "test", (
        "Rewrite the following text in small letters.",
        "Convert every letter of this text to lowercase.",
        "Return the text below with all letters lowercased.",
    ), relative="string_uppercase"),
    # sentiment
    _t("sentiment_movie", "sentiment", "train", (
        "Is this movie review positive or negative?",
        "Label the sentiment of this film review: positive or negative.",
        "Read this review of a movie and answer with positive or negative.",
    )),
    _t("sentiment_restaurant", "sentiment", "train", (
        "Is this restaurant review positive or negative?",
        "Label the sentiment of this dining review: positive or negative.",
        "Read this review of a restaurant and answer with positive or negative.",
    )),
    _t("sentiment_hotel", "sentiment", "train", (
        "Is this hotel review positive or negative?",
        "Label the sentiment of this hotel stay: positive or negative.",
        "Read this review of a hotel and answer with positive or negative.",
    )),
    _t("sentiment_product", "sentiment", "test", (
        "Is this product review positive or negative?",
        "Label the sentiment of this customer review: positive or negative.",
        "Read this review of a gadget and answer with positive or negative.",
    ), relative="sentiment_movie"),
    # word relations
    _t("word_antonym", "word_relations", "train", (
        "Give the opposite of the following word.",
        "What is an antonym of this word? Reply with one word.",
        "Write the word that means the opposite of the one below.",
    )),
    _t("word_plural", "word_relations", "train", (
        "Give the plural form of the following noun.",
        "What is the plural of this word? Reply with one word.",
        "Write the noun below in its plural form.",
    )),
    _t("word_past_tense", "word_relations", "train", (
        "Give the simple past tense of the following verb.",
        "What is the past tense of this verb? Reply with one word.",
        "Write the verb below in the past simple.",
    )),
    _t("word_comparative", "word_relations", "train", (
        "Give the comparative form of the following adjective.",
        "What is the comparative of this adjective (as in 'big, bigger')?",
        "Write the adjective below in its comparative form.",
    )),
    _t("word_superlative", "word_relations", "test", (
        "Give the superlative form of the following adjective.",
        "What is the superlative of this adjective (as in 'big, biggest')?",
        "Write the adjective below in its superlative form.",
    ), relative="word_comparative"),
    # world facts
    _t("facts_capital", "world_facts", "train", (
        "What is the capital city of the following country?",
        "Name the capital of this country. Reply with the city only.",
        "Which city is the capital of the country below?",
    )),
    _t("facts_continent", "world_facts", "train", (
        "On which continent is the following country?",
        "Name the continent this country belongs to.",
        "Which continent is the country below located in?",
    )),
    _t("facts_currency", "world_facts", "train", (
        "What is the name of the currency used in this country?",
        "Name the currency of the following country, in one or two words.",
        "Which money is used in the country below? Give its name.",
    ), alternatives=gen.the_alternative),
    _t("facts_language", "world_facts", "train", (
        "What is the main official language of this country?",
        "Name the language most people speak in the following country.",
        "Which language is official in the country below?",
    )),
    _t("facts_country_of_capital", "world_facts", "test", (
        "Of which country is the following city the capital?",
        "Name the country whose capital is this city.",
        "Which country has the city below as its capital?",
    ), relative="facts_capital"),
    # list operations
    _t("list_sort_ascending", "list_operations", "train", (
        "Sort the following numbers from smallest to largest.",
        "Put these numbers in ascending order, separated by commas.",
        "Arrange the list below in increasing order.",
    ), alternatives=gen.list_alternatives),
    _t("list_max", "list_operations", "train", (
        "Which is the largest number in the following list?",
        "Give the maximum of these numbers.",
        "Reply with the biggest value in the list below.",
    )),
    _t("list_min", "list_operations", "train", (
        "Which is the smallest number in the following list?",
        "Give the minimum of these numbers.",
        "Reply with the lowest value in the list below.",
    )),
    _t("list_sum", "list_operations", "train", (
        "Add up all the numbers in the following list.",
        "What is the total of these numbers? Give just the number.",
        "Reply with the sum of the values in the list below.",
    )),
    _t("list_count", "list_operations", "train", (
        "How many items are in the following list?",
        "Count the entries in this list, repeats included.",
        "Reply with the number of words in the list below.",
    )),
    _t("list_dedupe", "list_operations", "train", (
        "Remove the repeated numbers, keeping each first occurrence in order.",
        "Write this list without duplicates, in the original order.",
        "Drop every number that already appeared earlier in the list below.",
    ), alternatives=gen.list_alternatives),
    _t("list_sort_descending", "list_operations", "test", (
        "Sort the following numbers from largest to smallest.",
        "Put these numbers in descending order, separated by commas.",
        "Arrange the list below in decreasing order.",
    ), relative="list_sort_ascending", alternatives=gen.list_alternatives),
    # calendar
    _t("calendar_next_day", "calendar", "train", (
        "Which day of the week comes right after the following one?",
        "Name the weekday that follows this day.",
        "If today is the day below, what day is tomorrow?",
    )),
    _t("calendar_next_month", "calendar", "train", (
        "Which month comes right after the following one?",
        "Name the month that follows this month in the calendar.",
        "If this month is the one below, what is next month?",
    )),
    _t("calendar_days_in_month", "calendar", "train", (
        "How many days does the following month have?",
        "Give the number of days in this month of this year.",
        "Reply with how many days the month below lasts.",
    ), alternatives=gen.days_alternative),
    _t("calendar_previous_day", "calendar", "test", (
        "Which day of the week comes right before the following one?",
        "Name the weekday that precedes this day.",
        "If today is the day below, what day was yesterday?",
    ), relative="calendar_next_day"),
    # extraction
    _t("extract_number", "extraction", "train", (
        "Copy the number that appears in the following sentence.",
        "Which number is mentioned in this sentence? Reply with it only.",
        "Extract the quantity from the sentence below.",
    )),
    _t("extract_year", "extraction", "train", (
        "Which year is mentioned in the following sentence?",
        "Copy the year out of this sentence.",
        "Extract the four-digit year from the sentence below.",
    )),
    _t("extract_name", "extraction", "train", (
        "Who is the person named in the following sentence? Give the full name.",
        "Copy the full name of the person mentioned in this sentence.",
        "Extract the person's first and last name from the sentence below.",
    )),
    _t("extract_email", "extraction", "train", (
        "Copy the email address from the following sentence.",
        "Which email address is mentioned in this sentence? Reply with it only.",
        "Extract the email address from the sentence below.",
    )),
    _t("extract_city", "extraction", "test", (
        "Which city is named in the following sentence?",
        "Copy the name of the city mentioned in this sentence.",
        "Extract the city from the sentence below.",
    ), relative="extract_name"),
    # logic
    _t("logic_boolean", "logic", "train", (
        "Evaluate the following Boolean expression. Answer True or False.",
        "Is this logical expression True or False?",
        "Work out the truth value of the expression below.",
    )),
    _t("logic_parity", "logic", "train", (
        "Is the following number even or odd?",
        "Tell whether this number is even or odd.",
        "Reply with even or odd for the number below.",
    )),
    _t("logic_compare", "logic", "train", (
        "Which of the two numbers is larger? Reply with that number.",
        "Pick the bigger of these two numbers.",
        "Compare the two numbers below and give the greater one.",
    )),
    _t("logic_divisible", "logic", "train", (
        "Is the first number divisible by the second? Answer yes or no.",
        "Does the division below leave no remainder? Reply yes or no.",
        "Tell whether the first number is a multiple of the second: yes or no.",
    )),
    # An odd one out: the category exists in train, but no train task continues a pattern.
    _t("logic_sequence_next", "logic", "test", (
        "What number comes next in the following sequence?",
        "Continue this pattern with the next number.",
        "Give the next term of the sequence below.",
    )),
    # unit conversion: a category seen only at test time
    _t("units_length", "unit_conversion", "test", (
        "Convert the length as asked and reply with the number only.",
        "How much is this length in the requested unit? Give just the number.",
        "Express the distance below in the unit named after 'in'.",
    )),
    _t("units_time", "unit_conversion", "test", (
        "Convert the duration as asked and reply with the number only.",
        "How much is this time span in the requested unit? Give just the number.",
        "Express the duration below in the unit named after 'in'.",
    )),
)
# fmt: on


def check_registry(tasks: Sequence[TaskSpec]) -> None:
    """Raise ValueError naming the task if the registry breaks an invariant the study relies on."""
    by_name: dict[str, TaskSpec] = {}
    for spec in tasks:
        where = f"builtin task {spec.name!r}"
        if not _NAME_PATTERN.fullmatch(spec.name):
            raise ValueError(f"{where}: name must be snake_case")
        if spec.name in by_name:
            raise ValueError(f"{where}: name is used by two tasks; names seed the RNG and must be unique")
        if spec.split not in TASK_SPLITS:
            raise ValueError(f"{where}: split must be one of {list(TASK_SPLITS)}, got {spec.split!r}")
        if len(set(spec.phrasings)) < 3:
            raise ValueError(f"{where}: needs at least 3 distinct phrasings, got {len(set(spec.phrasings))}")
        by_name[spec.name] = spec
    for spec in tasks:
        if spec.relative is None:
            continue
        where = f"builtin task {spec.name!r}: relative {spec.relative!r}"
        relative = by_name.get(spec.relative)
        if spec.split != "test":
            raise ValueError(f"{where}: only test tasks name a relative")
        if relative is None or relative.split != "train" or relative.category != spec.category:
            raise ValueError(f"{where}: expected a train task of category {spec.category!r}")


def task_seed(seed: int, name: str) -> int:
    """A stable per-task seed: adding or reordering tasks never changes another task's data."""
    return stable_seed(seed, name, byteorder="big")


def task_examples(spec: TaskSpec, count: int, seed: int) -> list[tuple[str, str]]:
    """`count` (user message, reply) pairs for one task, avoiding repeats while the input space allows."""
    rng = random.Random(task_seed(seed, spec.name))
    seen: set[tuple[str, str]] = set()
    examples: list[tuple[str, str]] = []
    for _ in range(count):
        for _attempt in range(MAX_ATTEMPTS):
            phrasing = rng.choice(spec.phrasings)
            text, reply = spec.generate(rng)
            pair = (f"{phrasing}\n{text}", reply)
            if pair not in seen:
                break
        seen.add(pair)
        examples.append(pair)
    return examples


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"generate_builtin: {name} must be an integer of at least 1, got {value!r}")


def synthetic_rows(count: int, seed: int, tasks: Sequence[TaskSpec] = TASKS) -> list[dict]:
    """`count` rows of a built-in stand-in for DoIT's synthetic pool: drawn from the training tasks with Zipf
    weights (the k-th task in registry order weighted 1/k), so a few abilities dominate and others are barely
    covered, as in machine-written data, and labelled `synthetic` (no ability), as DoIT's pool is."""
    train = [spec for spec in tasks if spec.split == "train"]
    weights = [1 / (rank + 1) for rank in range(len(train))]
    rng = random.Random(task_seed(seed, SYNTHETIC))
    rows = []
    for k in range(count):
        spec = rng.choices(train, weights)[0]
        text, reply = spec.generate(rng)
        rows.append(
            _row(
                f"{SOURCE}/{SYNTHETIC}/{k:05d}",
                SYNTHETIC,
                SYNTHETIC,
                "train",
                f"{rng.choice(spec.phrasings)}\n{text}",
                [reply],
                reply,
            )
        )
    return rows


def _row(row_id: str, task: str, category: str, split: str, user: str, references: list[str], reply: str) -> dict:
    return {
        "id": row_id,
        "source": SOURCE,
        "task": task,
        "category": category,
        "split": split,
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}],
        "references": references,
        "answer": reply,
        "choices": None,
        "question_format": 0,
    }


def generate_builtin(
    per_train_task: int, per_test_task: int, seed: int, *, tasks: Sequence[TaskSpec] = TASKS, synthetic: int = 0
) -> pa.Table:
    """Rows for every task in canonical schema, ordered by task (registry order) then example index.

    `tasks` defaults to the registry; passing a subset or a reordering keeps each task's rows unchanged.
    `synthetic` rows of the synthetic stand-in (`synthetic_rows`) follow, for Study A's curated-vs-synthetic sweeps.
    """
    _check_count("per_train_task", per_train_task)
    _check_count("per_test_task", per_test_task)
    check_registry(tasks)
    rows = []
    for spec in tasks:
        count = per_train_task if spec.split == "train" else per_test_task
        for k, (user, reply) in enumerate(task_examples(spec, count, seed)):
            extra = spec.alternatives(reply) if spec.alternatives else ()
            references = list(dict.fromkeys((reply, *extra)))
            rows.append(
                _row(f"{SOURCE}/{spec.name}/{k:05d}", spec.name, spec.category, spec.split, user, references, reply)
            )
    return to_table(rows + synthetic_rows(synthetic, seed, tasks), origin=SOURCE)
