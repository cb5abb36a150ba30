"""The built-in generator as a registered data source (dynamics.data.formats.builtin), its knobs its options."""

from __future__ import annotations

import pytest
from format_helpers import check_options

from dynamics.config import DataConfig
from dynamics.data.builtin import generate_builtin
from dynamics.data.formats import FORMATS
from dynamics.data.sources import load_examples


def test_the_source_gives_exactly_the_generators_rows() -> None:
    config = DataConfig(source="builtin", options={"per_train_task": 3, "per_test_task": 2})
    assert load_examples(config, seed=5).equals(generate_builtin(3, 2, seed=5))


def test_defaults_are_the_offline_studys_sizes() -> None:
    assert load_examples(DataConfig(), seed=0).equals(generate_builtin(40, 8, seed=0))


def test_it_reads_no_files_and_holds_its_test_tasks_out() -> None:
    builtin = FORMATS.get("builtin")
    assert not builtin.reads_files and builtin.disjoint_tasks


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"per_train_task": 0}, "options.per_train_task: Input should be greater than or equal to 1"),
        ({"per_test_task": "8"}, "options.per_test_task: Input should be a valid integer"),
        ({"per_task": 3}, "options.per_task: Extra inputs are not permitted; did you mean 'per_test_task'?"),
    ],
)
def test_bad_options_name_the_option(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("?", r"\?")):
        check_options("builtin", **options)
