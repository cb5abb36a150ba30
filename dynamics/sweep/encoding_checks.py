"""Planning checks of how each model's tokenizer and template encode the study, before any Ray work.

A tokenizer that lacks a token its template needs fails here, naming the model's key, before the data loads; a test
task that truncation would empty fails once the data is loaded, naming the task; tasks that lose reply tokens are
reported, so a figure never silently averages over fewer or shorter test items than the data holds.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from dynamics.config import SweepConfig
from dynamics.models import ModelSource, TokenizerUnfit, load_tokenizer
from dynamics.sweep.preflight import PreflightError
from dynamics.text.census import truncation_census
from dynamics.text.templates import TEMPLATES

TokenizerCache = dict[tuple[str, str], Any]  # (tokenizer source, template name) → loaded tokenizer


def _tokenizer_key(config: SweepConfig, model_key: str) -> str:
    model = config.models[model_key]
    return f"models.{model_key}.tokenizer" if model.tokenizer else f"models.{model_key}.pretrained"


def check_pretrained_tokenizers(config: SweepConfig, origin: str = "<config>") -> TokenizerCache:
    """Load every pretrained model's tokenizer with its template (built-in ones always fit); PreflightError
    naming the key and the tokenizer for each that cannot serve its template."""
    loaded: TokenizerCache = {}
    problems = []
    for model_key in config.grid.model:
        model = config.models[model_key]
        if model.pretrained is None:
            continue
        source, template = model.tokenizer or model.pretrained, config.train_for(model_key).template
        if (source, template) in loaded:
            continue
        try:
            loaded[source, template] = load_tokenizer(source, template)
        except TokenizerUnfit as error:
            problems.append(f"{origin}: key '{_tokenizer_key(config, model_key)}': {error}")
    if problems:
        raise PreflightError("\n".join(problems))
    return loaded


def truncation_report(
    config: SweepConfig,
    models: dict[str, ModelSource],
    test: pa.Table,
    tokenizers: TokenizerCache,
    origin: str,
    label: str = "test",
) -> list[str]:
    """Lines naming, per model, each task of the `label` set (the test split, or a named evaluation set) whose
    items lose reply tokens or drop out; PreflightError when one of its tasks would lose every item."""
    lines: list[str] = []
    for model_key in config.grid.model:
        train = config.train_for(model_key)
        source = models[model_key].tokenizer
        if (source, train.template) not in tokenizers:
            tokenizers[source, train.template] = load_tokenizer(source, train.template)
        census = truncation_census(test, tokenizers[source, train.template], TEMPLATES.get(train.template), train)
        emptied = census.emptied()
        if emptied:
            raise PreflightError(
                f"{origin}: key 'train.max_length' (model {model_key}): {label} tasks {', '.join(emptied)} lose "
                f"every item at max_length {train.max_length} (no reply token is left), so they would vanish from "
                f"the {label} metrics: raise max_length or remove those tasks from the {label} set"
            )
        lines += [f"model {model_key}: {line}" for line in census.lines(label)]
    return lines
