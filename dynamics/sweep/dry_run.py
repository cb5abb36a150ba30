"""`sweep --dry-run`: the trial table, each trial's resources and an estimate of its GPU-hours, before anything
starts. No Ray, no training, no download: the data is read only where it is on this machine (its pool size and
token counts then are measured, else assumed and said so), a model's parameters are counted on the meta device
from its config (a local folder or the hub cache) or taken from its name.

GPU-seconds = (6·N·training tokens + 2·N·evaluated tokens) / (MFU · peak FLOP/s of one GPU): the MFU definition
the training loop logs (`dynamics.train.throughput`), so a measured MFU can be fed back in with `--mfu`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from dynamics.config import ModelConfig, SweepConfig, TrialFactors, grid_recipe_name, named_recipe, sized_recipe
from dynamics.data.problems import DataError
from dynamics.sweep.payload import trial_name
from dynamics.train.sharding import StepPlan
from dynamics.train.throughput import peak_flops_per_device
from dynamics.train.trial import trial_shape

DEFAULT_DEVICE = "H100"
DEFAULT_MFU = 0.4
TOKEN_SAMPLE_ROWS = 2000  # rows per split whose tokens are counted: a mean, not a census
_SIZE_IN_NAME = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", re.IGNORECASE)


@dataclass(frozen=True)
class Count:
    """A figure the estimate rests on and where it comes from ('measured on …', 'assumed: …')."""

    value: float | None
    origin: str


@dataclass(frozen=True)
class DataFacts:
    pool_size: Count  # training examples a volume of 'all' means
    test_items: Count
    train_tokens: dict[str, Count]  # model key → mean tokens of a training example (after truncation)
    test_tokens: dict[str, Count]
    unread: str | None = None  # why the data could not be read here, when it could not
    recipe_items: dict[str, Count] = field(default_factory=dict)  # grid recipe preset → examples it trains on


@dataclass(frozen=True)
class TrialEstimate:
    name: str
    volume: int | None  # None: 'all' of a pool this machine cannot read
    shape: str
    gpus: float
    steps: int | None
    train_tokens: float | None
    flops: float | None
    gpu_hours: float | None


def parameter_count(key: str, model: ModelConfig) -> Count:
    """Parameters of one model: exact for a built-in one or a config found locally, else read from its name."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM

    from dynamics.models import builtin_llama_config, builtin_tokenizer

    if model.builtin is not None:
        with torch.device("meta"):
            built = LlamaForCausalLM(builtin_llama_config(model.builtin, len(builtin_tokenizer())))
        return Count(sum(p.numel() for p in built.parameters()), "counted from the built-in sizes")
    assert model.pretrained is not None
    try:
        config = AutoConfig.from_pretrained(model.pretrained, local_files_only=True)
        with torch.device("meta"):
            built = AutoModelForCausalLM.from_config(config)
        return Count(sum(p.numel() for p in built.parameters()), f"counted from {model.pretrained}'s config.json")
    except (OSError, ValueError):  # not on this machine (no download in a dry run)
        pass
    for text in (model.pretrained, key):
        match = _SIZE_IN_NAME.search(Path(text).name)
        if match:
            value = float(match.group(1)) * (1e9 if match.group(2).lower() == "b" else 1e6)
            return Count(value, f"assumed from the name {match.group(0)!r} (its config.json is not on this machine)")
    return Count(None, f"unknown: {model.pretrained}'s config.json is not on this machine and its name gives no size")


def data_facts(config: SweepConfig, assume_pool: int | None = None, assume_tokens: float | None = None) -> DataFacts:
    """Pool size, test items and tokens per example, measured where the data and tokenizers are on this machine;
    `assume_pool` and `assume_tokens` stand in where they are not (and `assume_tokens` wins when given)."""
    from dynamics.data.problems import DataError
    from dynamics.data.schema import split_of
    from dynamics.data.sources import load_data

    cache = Path(config.workdir).resolve() / "cache" / "data"
    unread = _not_here(config)
    if unread is None:
        try:
            loaded = load_data(config.data, seed=min(config.grid.seed), cache_dir=cache if cache.is_dir() else None)
        except (DataError, OSError, ValueError) as error:
            unread = _first_line(error)
    if unread is not None:
        pool = Count(assume_pool, "--assume-pool") if assume_pool else Count(None, "unknown: pass --assume-pool")
        tokens = {key: _assumed_tokens(config, key, assume_tokens) for key in config.grid.model}
        unknown = Count(None, "unknown: their cost is left out")
        return DataFacts(pool, unknown, tokens, tokens, unread=unread, recipe_items=_nominal_recipe_items(config))
    train, test = split_of(loaded.table, "train"), split_of(loaded.table, "test")
    source = f"data source '{config.data.source}'"
    train_tokens, test_tokens = {}, {}
    for key in config.grid.model:
        if assume_tokens:
            train_tokens[key] = test_tokens[key] = _assumed_tokens(config, key, assume_tokens)
            continue
        train_tokens[key] = _mean_tokens(config, key, train, f"training rows of {source}")
        test_tokens[key] = _mean_tokens(config, key, test, f"test rows of {source}")
    return DataFacts(
        Count(train.num_rows, f"measured: {source}"),
        Count(test.num_rows, f"measured: {source}"),
        train_tokens,
        test_tokens,
        recipe_items=_measured_recipe_items(config, train, source),
    )


def _grid_recipes(config: SweepConfig) -> list[str]:
    """The recipe presets the grid's points train on (`curated-640`, `reconstruct`), each once."""
    names = (grid_recipe_name(p["recipe"], p["volume"]) for p in config.grid.raw_points() if p["recipe"] is not None)
    return list(dict.fromkeys(names))


def _measured_recipe_items(config: SweepConfig, train: pa.Table, source: str) -> dict[str, Count]:
    """Examples each grid recipe takes from the loaded training split (what its trials train on)."""
    from dynamics.data.recipes import available_rows, recipe_counts

    available = available_rows(train)
    items = {}
    for name in _grid_recipes(config):
        try:
            items[name] = Count(sum(recipe_counts(available, named_recipe(name)).values()), f"measured: {source}")
        except DataError as error:
            items[name] = Count(None, f"unknown: {error}")
    return items


def _nominal_recipe_items(config: SweepConfig) -> dict[str, Count]:
    """Each grid recipe's size from its name alone, where the name fixes it (curated-N, synthetic-N: N; baseline,
    reconstruct: their 10,000 budget, an upper bound); maximum and mix-N need the pools' sizes."""
    items = {}
    for name in _grid_recipes(config):
        recipe = named_recipe(name)
        if isinstance(recipe.curated_total, int) or recipe.curated_total is None:
            items[name] = Count((recipe.curated_total or 0) + recipe.synthetic, "assumed: the recipe's budget")
        else:
            items[name] = Count(None, "unknown: needs the pools' sizes")
    return items


def _not_here(config: SweepConfig) -> str | None:
    """Why the data is not read in a dry run: a source whose files are not on this machine (a hub dataset is
    not downloaded for an estimate); None when it can be read."""
    from dynamics.data.formats import FORMATS

    for key, source in (("data", config.data), ("data.test_source", config.data.test_source)):
        if source is None or not FORMATS.get(source.source).reads_files:
            continue
        if not source.path or not Path(source.path).expanduser().exists():
            return f"{key}.path {source.path}: not on this machine (a dry run downloads nothing)"
    return None


def _assumed_tokens(config: SweepConfig, key: str, assume_tokens: float | None) -> Count:
    if assume_tokens:
        return Count(assume_tokens, "--assume-tokens")
    return Count(config.train_for(key).max_length / 2, "assumed: half of train.max_length (--assume-tokens)")


def _mean_tokens(config: SweepConfig, key: str, rows, label: str) -> Count:
    from dynamics.models import TokenizerUnfit, builtin_tokenizer, load_tokenizer
    from dynamics.text.census import encode_split
    from dynamics.text.templates import TEMPLATES

    train = config.train_for(key)
    model = config.models[key]
    half = train.max_length / 2
    if model.builtin is None and not Path(_tokenizer_of(model)).expanduser().exists():
        return Count(half, f"assumed: half of train.max_length ({key}'s tokenizer is not on this machine)")
    try:  # the built-in tokenizer carries Study A's role tokens already
        tokenizer = (
            builtin_tokenizer() if model.builtin is not None else load_tokenizer(_tokenizer_of(model), train.template)
        )
    except (OSError, ValueError, TokenizerUnfit) as error:
        return Count(half, f"assumed: half of train.max_length ({key}'s tokenizer is not here: {_first_line(error)})")
    sample = rows.slice(0, TOKEN_SAMPLE_ROWS)
    if sample.num_rows == 0:
        return Count(half, f"assumed: half of train.max_length (no {label})")
    encoded = encode_split(sample, tokenizer, TEMPLATES.get(train.template), train)
    if not encoded.examples:
        return Count(half, f"assumed: half of train.max_length (every sampled {label} was dropped)")
    mean = sum(len(example.input_ids) for example in encoded.examples) / len(encoded.examples)
    return Count(mean, f"measured on {sample.num_rows:,} {label} with {key}'s tokenizer")


def _tokenizer_of(model: ModelConfig) -> str:
    source = model.tokenizer or model.pretrained
    assert source is not None  # a pretrained model (ModelConfig holds exactly one of builtin and pretrained)
    return source


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:160] if text else type(error).__name__


def _evaluations(steps: int, every: int) -> int:
    """Evaluations of a cadence over `steps`: step 0, every `every`, and the last step."""
    return steps // every + 1 + (steps % every != 0)


def estimate(config: SweepConfig, facts: DataFacts, mfu: float, device: str) -> tuple[list[TrialEstimate], dict]:
    """Each trial's estimate, and per model what it rests on (parameters, peak FLOP/s)."""
    parameters = {key: parameter_count(key, config.models[key]) for key in config.grid.model}
    peaks = {
        key: peak_flops_per_device(device, config.train_for(key).precision, config.train_for(key).peak_tflops)
        for key in config.grid.model
    }
    trials = []
    for factors in config.grid.raw_points():
        if factors["volume"] == "all":
            factors["volume"] = facts.pool_size.value
        key, volume, recipe = factors["model"], factors["volume"], factors["recipe"]
        items = volume  # the examples a trial trains on: a recipe's own count (mix-N is maximum plus N)
        if recipe is not None:
            items = facts.recipe_items[grid_recipe_name(recipe, volume)].value
            volume = items if volume is None else volume  # a fixed recipe's volume is its size
        train, scaling = config.train_for(key), config.scaling_for(key)
        gpus = scaling.num_workers * scaling.gpus_per_worker if scaling.use_gpu else 0.0
        shape = trial_shape(scaling, train)
        if volume is None or items is None:
            name = trial_name(factors | {"volume": volume or ("?" if recipe else "all")})
            trials.append(TrialEstimate(name, None, shape, gpus, None, None, None, None))
            continue
        volume, items = int(volume), int(items)
        plan = StepPlan.of(train, items, scaling.num_workers, 0, factors["seed"])  # the steps the loop takes
        steps = plan.total_steps
        train_tokens = (items - plan.dropped_per_epoch) * train.epochs * (facts.train_tokens[key].value or 0.0)
        flops = gpu_hours = None
        n = parameters[key].value
        if n is not None:
            flops = 6 * n * train_tokens + 2 * n * _evaluated_tokens(config, key, steps, facts)
            peak = peaks[key]
            gpu_hours = None if peak is None else flops / (mfu * peak) / 3600
        name = trial_name(TrialFactors(**(factors | {"volume": volume})))
        trials.append(TrialEstimate(name, volume, shape, gpus, steps, train_tokens, flops, gpu_hours))
    return trials, {"parameters": parameters, "peaks": peaks}


def _evaluated_tokens(config: SweepConfig, key: str, steps: int, facts: DataFacts) -> float:
    """Tokens the trial's evaluations pass forward: test loss at its cadence and each generation group's
    prompts plus their new tokens (decoding is bound by memory, not FLOPs: this understates its time)."""
    items = facts.test_items.value
    if items is None:
        return 0.0
    per_item = facts.test_tokens[key].value
    train = config.train_for(key)
    tokens = _evaluations(steps, train.eval_every) * items * per_item
    for group in config.evaluate.in_loop:
        scored = min(items, group.subset or items)
        tokens += _evaluations(steps, group.every) * scored * (per_item + config.evaluate.max_new_tokens)
    return tokens


def _si(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "?"
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.{digits}f}{unit}"
    return f"{value:.0f}"


def render(
    config: SweepConfig, trials: Sequence[TrialEstimate], basis: dict, facts: DataFacts, mfu: float, device: str
) -> str:
    """The dry run's report: the table, the totals, every assumption."""
    grid = " × ".join(f"{factor} [{', '.join(map(str, values))}]" for factor, values in config.grid.described().items())
    lines = [f"sweep {config.name}: {_trials(len(trials))} ({grid}); nothing started", ""]
    header = ("trial", "resources per trial", "steps", "train tokens", "GPU-hours")
    rows = [
        (t.name, t.shape, "?" if t.steps is None else str(t.steps), _si(t.train_tokens), _gpu_hours(t)) for t in trials
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    known = [t.gpu_hours for t in trials if t.gpu_hours is not None]
    lines.append("")
    summary = f"total: {sum(known):,.2f} GPU-hours on {device} over {len(known)} of {_trials(len(trials))}"
    on_gpus = [t for t in trials if t.gpus > 0 and t.gpu_hours is not None]
    if on_gpus:
        wall = sum(t.gpu_hours / t.gpus for t in on_gpus) / max(1, config.scaling.max_concurrent_trials)
        summary += f"; about {wall:,.2f} h of wall time at {config.scaling.max_concurrent_trials} trials at once"
    elif not any(t.gpus > 0 for t in trials):
        summary += " (the config trains on CPUs: the figure is what the same work would take on GPUs)"
    if len(known) < len(trials):
        summary += f"; {_trials(len(trials) - len(known))} unknown ('?': see below)"
    lines.append(summary)
    lines.append("assumptions (GPU-seconds = (6·N·train tokens + 2·N·evaluated tokens) / (MFU · peak)):")
    lines.append(f"  MFU {mfu:.0%} (--mfu); device {device} (--device)")
    if facts.unread is not None:
        lines.append(f"  data not read on this machine: {facts.unread}")
    for key in config.grid.model:
        peak = basis["peaks"][key]
        precision = config.train_for(key).precision
        peak_text = (
            f"{peak / 1e12:,.1f} TFLOP/s ({precision})" if peak else f"unknown for {device!r}: set train.peak_tflops"
        )
        count, tokens = basis["parameters"][key], facts.train_tokens[key]
        lines.append(f"  {key}: {_si(count.value, 2)} parameters, {count.origin}; peak {peak_text}")
        lines.append(f"    {_si(tokens.value)} tokens per training example, {tokens.origin}")
    lines.append(f"  pool: {_si(facts.pool_size.value)} training examples, {facts.pool_size.origin}")
    for name, count in facts.recipe_items.items():
        sized = sized_recipe(name)
        if sized is None or sized[0] == "mix" or count.value != sized[1]:  # what the name alone does not say
            lines.append(f"  recipe {name}: {_si(count.value)} training examples, {count.origin}")
    lines.append(
        f"  evaluation: {_si(facts.test_items.value)} test items, {facts.test_items.origin}; decoding is bound by "
        "memory, so its FLOPs understate its time"
    )
    return "\n".join(lines)


def _trials(count: int) -> str:
    return f"{count} trial" if count == 1 else f"{count} trials"


def _gpu_hours(trial: TrialEstimate) -> str:
    return "?" if trial.gpu_hours is None else f"{trial.gpu_hours:,.2f}"


def dry_run(
    config: SweepConfig,
    mfu: float = DEFAULT_MFU,
    device: str = DEFAULT_DEVICE,
    assume_pool: int | None = None,
    assume_tokens: float | None = None,
) -> str:
    """The report of a sweep that is not run (names checked first, as a real run would)."""
    from dynamics.sweep.plan import check_names

    if not 0 < mfu <= 1:
        raise ValueError(f"--mfu {mfu}: a fraction of the peak, in (0, 1]")
    check_names(config)
    facts = data_facts(config, assume_pool, assume_tokens)
    trials, basis = estimate(config, facts, mfu, device)
    return render(config, trials, basis, facts, mfu, device)
