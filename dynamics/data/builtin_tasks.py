"""Input/output generators for the built-in tasks: each takes a `random.Random` and returns (input, reply).

Generators draw every choice from the RNG they are given and read only the constant tables in
`builtin_vocab`, so a task's data depends on nothing but its seed. Phrasings and the registry live
in `builtin`; this module only knows how to make one correct example.
"""

from __future__ import annotations

import calendar
import random

from dynamics.data import builtin_vocab as vocab

Example = tuple[str, str]


def _join(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def list_alternatives(reply: str) -> tuple[str, ...]:
    """Other spellings of a comma-separated list reply that a scorer should accept."""
    return (f"[{reply}]", reply.replace(", ", ","))


def the_alternative(reply: str) -> tuple[str, ...]:
    """Accept 'the euro' for 'euro': the article changes nothing about the answer."""
    return (f"the {reply}",)


def days_alternative(reply: str) -> tuple[str, ...]:
    return (f"{reply} days",)


# --- arithmetic ------------------------------------------------------------------------------------


def arithmetic_add(rng: random.Random) -> Example:
    a, b = rng.randint(0, 500), rng.randint(0, 500)
    return f"{a} + {b}", str(a + b)


def arithmetic_add_three(rng: random.Random) -> Example:
    a, b, c = rng.randint(0, 300), rng.randint(0, 300), rng.randint(0, 300)
    return f"{a} + {b} + {c}", str(a + b + c)


def arithmetic_subtract(rng: random.Random) -> Example:
    a, b = sorted((rng.randint(0, 500), rng.randint(0, 500)), reverse=True)
    return f"{a} - {b}", str(a - b)


def arithmetic_multiply(rng: random.Random) -> Example:
    a, b = rng.randint(2, 25), rng.randint(2, 25)
    return f"{a} * {b}", str(a * b)


def arithmetic_divide(rng: random.Random) -> Example:
    # Built from the quotient so every division is exact and the reply is a whole number.
    divisor, quotient = rng.randint(2, 12), rng.randint(1, 30)
    return f"{divisor * quotient} / {divisor}", str(quotient)


# --- string manipulation -----------------------------------------------------------------------------


def string_reverse(rng: random.Random) -> Example:
    word = rng.choice(vocab.WORDS)
    return word, word[::-1]


def string_uppercase(rng: random.Random) -> Example:
    phrase = " ".join(rng.sample(vocab.WORDS, 2))
    return phrase, phrase.upper()


def string_lowercase(rng: random.Random) -> Example:
    phrase = " ".join(rng.sample(vocab.WORDS, 2)).upper()
    return phrase, phrase.lower()


def string_length(rng: random.Random) -> Example:
    word = rng.choice(vocab.WORDS)
    return word, str(len(word))


def string_count_vowels(rng: random.Random) -> Example:
    word = rng.choice(vocab.WORDS)
    return word, str(sum(letter in "aeiou" for letter in word))


# --- sentiment ---------------------------------------------------------------------------------------


def _review(rng: random.Random, domain: str) -> Example:
    label = rng.choice(("positive", "negative"))
    adjectives = vocab.POSITIVE_ADJECTIVES if label == "positive" else vocab.NEGATIVE_ADJECTIVES
    first_aspect, second_aspect = rng.sample(vocab.REVIEW_ASPECTS[domain], 2)
    first_adjective, second_adjective = rng.sample(adjectives, 2)
    closer = rng.choice(vocab.REVIEW_CLOSERS[domain][label])
    text = f"The {first_aspect} was {first_adjective} and the {second_aspect} was {second_adjective}."
    return f"{text} {closer}", label


def sentiment_movie(rng: random.Random) -> Example:
    return _review(rng, "movie")


def sentiment_restaurant(rng: random.Random) -> Example:
    return _review(rng, "restaurant")


def sentiment_hotel(rng: random.Random) -> Example:
    return _review(rng, "hotel")


def sentiment_product(rng: random.Random) -> Example:
    return _review(rng, "product")


# --- word relations ----------------------------------------------------------------------------------


def word_antonym(rng: random.Random) -> Example:
    return rng.choice(vocab.ANTONYMS)


def word_plural(rng: random.Random) -> Example:
    return rng.choice(vocab.PLURALS)


def word_past_tense(rng: random.Random) -> Example:
    return rng.choice(vocab.PAST_TENSES)


def word_comparative(rng: random.Random) -> Example:
    adjective, comparative, _ = rng.choice(vocab.DEGREES)
    return adjective, comparative


def word_superlative(rng: random.Random) -> Example:
    adjective, _, superlative = rng.choice(vocab.DEGREES)
    return adjective, superlative


# --- world facts -------------------------------------------------------------------------------------


def facts_capital(rng: random.Random) -> Example:
    country = rng.choice(vocab.COUNTRIES)
    return country.name, country.capital


def facts_country_of_capital(rng: random.Random) -> Example:
    country = rng.choice(vocab.COUNTRIES)
    return country.capital, country.name


def facts_continent(rng: random.Random) -> Example:
    country = rng.choice(vocab.COUNTRIES)
    return country.name, country.continent


def facts_currency(rng: random.Random) -> Example:
    country = rng.choice(vocab.COUNTRIES)
    return country.name, country.currency


def facts_language(rng: random.Random) -> Example:
    country = rng.choice([c for c in vocab.COUNTRIES if c.language is not None])
    return country.name, str(country.language)


# --- list operations ---------------------------------------------------------------------------------


def _distinct_numbers(rng: random.Random) -> list[int]:
    return rng.sample(range(1, 100), rng.randint(4, 7))


def list_sort_ascending(rng: random.Random) -> Example:
    numbers = _distinct_numbers(rng)
    return _join(numbers), _join(sorted(numbers))


def list_sort_descending(rng: random.Random) -> Example:
    numbers = _distinct_numbers(rng)
    return _join(numbers), _join(sorted(numbers, reverse=True))


def list_max(rng: random.Random) -> Example:
    numbers = _distinct_numbers(rng)
    return _join(numbers), str(max(numbers))


def list_min(rng: random.Random) -> Example:
    numbers = _distinct_numbers(rng)
    return _join(numbers), str(min(numbers))


def list_sum(rng: random.Random) -> Example:
    numbers = rng.sample(range(1, 50), rng.randint(3, 5))
    return _join(numbers), str(sum(numbers))


def list_count(rng: random.Random) -> Example:
    items = rng.choices(vocab.FRUITS, k=rng.randint(2, 9))
    return ", ".join(items), str(len(items))


def list_dedupe(rng: random.Random) -> Example:
    # More draws than distinct values, so every list has at least one repeat to remove.
    values = rng.sample(range(1, 30), rng.randint(2, 5))
    numbers = rng.choices(values, k=len(values) + rng.randint(1, 3))
    return _join(numbers), _join(list(dict.fromkeys(numbers)))


# --- calendar ----------------------------------------------------------------------------------------


def _shift(names: tuple[str, ...], rng: random.Random, step: int) -> Example:
    index = rng.randrange(len(names))
    return names[index], names[(index + step) % len(names)]


def calendar_next_day(rng: random.Random) -> Example:
    return _shift(vocab.WEEKDAYS, rng, 1)


def calendar_previous_day(rng: random.Random) -> Example:
    return _shift(vocab.WEEKDAYS, rng, -1)


def calendar_next_month(rng: random.Random) -> Example:
    return _shift(vocab.MONTHS, rng, 1)


def calendar_days_in_month(rng: random.Random) -> Example:
    # The year is part of the input so that February has exactly one right answer.
    month, year = rng.randint(1, 12), rng.randint(1990, 2030)
    return f"{vocab.MONTHS[month - 1]} {year}", str(calendar.monthrange(year, month)[1])


# --- extraction --------------------------------------------------------------------------------------

_NUMBER_SENTENCES = (
    "The bakery sold {} loaves of bread on Saturday.",
    "Our group walked {} kilometers during the trip.",
    "There were {} people waiting outside the museum.",
    "She read {} pages before falling asleep.",
    "The parcel weighs {} grams according to the label.",
)
_YEAR_SENTENCES = (
    "The old bridge was finished in {} after years of work.",
    "The company moved into its new office in {}.",
    "In {} the town opened its first public library.",
    "The song was recorded in {} and released much later.",
)
_NAME_SENTENCES = (
    "Yesterday {} won the chess tournament.",
    "The report was written by {} last week.",
    "Please give this letter to {} at the front desk.",
    "{} will lead the meeting on Thursday.",
)
_EMAIL_SENTENCES = (
    "Please send the form to {} before Friday.",
    "For questions, contact {} at any time.",
    "You can reach our support team at {} today.",
    "My new address is {}, so update your list.",
)
_CITY_SENTENCES = (
    "Our train to {} leaves at noon.",
    "She spent the summer working in {}.",
    "The conference will take place in {} next spring.",
    "He moved from a small farm to {} last year.",
)


def _full_name(rng: random.Random) -> str:
    return f"{rng.choice(vocab.FIRST_NAMES)} {rng.choice(vocab.LAST_NAMES)}"


def extract_number(rng: random.Random) -> Example:
    number = str(rng.randint(2, 999))
    return rng.choice(_NUMBER_SENTENCES).format(number), number


def extract_year(rng: random.Random) -> Example:
    year = str(rng.randint(1800, 2024))
    return rng.choice(_YEAR_SENTENCES).format(year), year


def extract_name(rng: random.Random) -> Example:
    name = _full_name(rng)
    return rng.choice(_NAME_SENTENCES).format(name), name


def extract_email(rng: random.Random) -> Example:
    first, last = rng.choice(vocab.FIRST_NAMES).lower(), rng.choice(vocab.LAST_NAMES).lower()
    local = rng.choice((f"{first}.{last}", f"{first}{rng.randint(1, 99)}", f"{first[0]}{last}"))
    email = f"{local}@{rng.choice(vocab.EMAIL_DOMAINS)}"
    return rng.choice(_EMAIL_SENTENCES).format(email), email


def extract_city(rng: random.Random) -> Example:
    city = rng.choice(vocab.CITIES)
    return rng.choice(_CITY_SENTENCES).format(city), city


# --- logic -------------------------------------------------------------------------------------------


def _bool_operand(rng: random.Random) -> tuple[str, bool]:
    value = rng.random() < 0.5
    if rng.random() < 0.3:
        return f"not {value}", not value
    return str(value), value


def _combine(operator: str, left: bool, right: bool) -> bool:
    return (left and right) if operator == "and" else (left or right)


def logic_boolean(rng: random.Random) -> Example:
    left, left_value = _bool_operand(rng)
    right, right_value = _bool_operand(rng)
    operator = rng.choice(("and", "or"))
    text, value = f"{left} {operator} {right}", _combine(operator, left_value, right_value)
    if rng.random() < 0.5:
        # Parenthesised so the reading does not depend on and/or precedence.
        third, third_value = _bool_operand(rng)
        outer = rng.choice(("and", "or"))
        text, value = f"({text}) {outer} {third}", _combine(outer, value, third_value)
    return text, str(value)


def logic_parity(rng: random.Random) -> Example:
    number = rng.randint(0, 9999)
    return str(number), "even" if number % 2 == 0 else "odd"


def logic_compare(rng: random.Random) -> Example:
    a, b = rng.sample(range(0, 1000), 2)
    return f"{a} or {b}", str(max(a, b))


def logic_divisible(rng: random.Random) -> Example:
    divisor = rng.randint(2, 9)
    # Half the questions are built divisible, so 'yes' is not a rare answer.
    number = divisor * rng.randint(2, 40) + (0 if rng.random() < 0.5 else rng.randint(1, divisor - 1))
    return f"{number} by {divisor}", "yes" if number % divisor == 0 else "no"


def logic_sequence_next(rng: random.Random) -> Example:
    start, step = rng.randint(1, 30), rng.randint(2, 12)
    terms = [start + step * i for i in range(5)]
    return _join(terms[:4]), str(terms[4])


# --- unit conversion (test-only category) --------------------------------------------------------------

# (from unit, to unit, factor)
# fmt: off
_LENGTH_FACTORS = (
    ("kilometers", "meters", 1000), ("meters", "centimeters", 100), ("centimeters", "millimeters", 10),
)
_TIME_FACTORS = (
    ("hours", "minutes", 60), ("minutes", "seconds", 60), ("days", "hours", 24), ("weeks", "days", 7),
)
# fmt: on


def _convert(rng: random.Random, factors: tuple[tuple[str, str, int], ...]) -> Example:
    source, target, factor = rng.choice(factors)
    amount = rng.randint(2, 60)
    return f"{amount} {source} in {target}", str(amount * factor)


def units_length(rng: random.Random) -> Example:
    return _convert(rng, _LENGTH_FACTORS)


def units_time(rng: random.Random) -> Example:
    return _convert(rng, _TIME_FACTORS)
