"""The `evaluate:` section (SPEC §4): which metrics run inside the training loop, on what, and how replies decode.

Test loss runs every `train.eval_every` steps as before; the generation metrics (ROUGE, exact match, the
reward-model score, the per-ability scores) cost a decoding pass each, so each group of them declares its own
cadence and, optionally, a seeded subset of the test set stratified by task. Metric names are strings here and are
resolved against the metric registry by the planning step (`dynamics.sweep.plan`), which names an unknown one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dynamics.config.base import Section
from dynamics.config.builtin_model import BuiltinModelConfig
from dynamics.config.data import EvalSourceConfig
from dynamics.config.paths import ExpandedPath

# Metric keys start with the set's name and an underscore: these would collide with the loop's own keys.
RESERVED_SET_NAMES = ("test", "train", "eval", "selected", "dropped", "truncated")


class InLoopMetrics(Section):
    """A group of metrics evaluated together inside the loop: one decoding pass serves all of them."""

    metrics: list[str] = Field(..., min_length=1, description="Registered metric names: 'rouge_l', 'exact_match', ….")
    every: int = Field(..., ge=1, description="Evaluate every k optimizer steps (and at step 0 and the last step).")
    subset: int | None = Field(
        None,
        ge=1,
        description="Test items scored: a seeded sample stratified by task (every task keeps its share); null = all.",
    )


class RewardModelConfig(Section):
    """The reward model behind the `reward` metric: a tiny one built from config, or a Hugging Face one."""

    builtin: BuiltinModelConfig | None = Field(
        None, description="Build a tiny LLaMA reward model (UltraRM's layout) from these sizes (no download)."
    )
    pretrained: ExpandedPath | None = Field(
        None,
        description="HF name or path: a sequence-classification reward model, or UltraRM's layout (LLaMA + "
        "value head).",
    )
    batch_size: int = Field(16, ge=1, description="(prompt, reply) pairs per reward-model forward pass.")
    max_length: int = Field(1024, ge=8, description="Tokens per scored text; longer ones lose their start.")

    @model_validator(mode="after")
    def _exactly_one(self) -> RewardModelConfig:
        if (self.builtin is None) == (self.pretrained is None):
            raise ValueError("set exactly one of 'builtin' or 'pretrained'")
        return self


class EvalSetConfig(Section):
    """A named evaluation set beside the test split (the valid split, an out-of-distribution file, …): its own
    metrics and cadence, reported under `<name>_<metric>/…` (e.g. `valid_loss/macro`, `ceval_ability/overall`)."""

    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]*$", description="Metric prefix: lowercase, digits, '_'.")
    split: Literal["valid"] | None = Field(None, description="The main data's 'valid' split (one of split/source).")
    source: EvalSourceConfig | None = Field(
        None, description="Another data source (DoIT's C-Eval-style files, say): its test rows, or all of them."
    )
    metrics: list[str] = Field(["loss"], min_length=1, description="Registered metric names: 'loss', 'rouge_l', ….")
    every: int | None = Field(None, ge=1, description="Evaluate every k optimizer steps; null = train.eval_every.")
    subset: int | None = Field(None, ge=1, description="Items scored by its generation metrics (seeded, by task).")

    @model_validator(mode="after")
    def _one_origin(self) -> EvalSetConfig:
        if (self.split is None) == (self.source is None):
            raise ValueError("set exactly one of 'split' (valid) or 'source' (another data source)")
        if self.name in RESERVED_SET_NAMES:
            raise ValueError(f"name {self.name!r} is reserved (metric keys of the loop start with it)")
        return self


class CheckpointMetrics(Section):
    """Metrics scored on a trial's eval checkpoints (`checkpoints.eval_every`), each checkpoint in its own Ray task,
    and logged at its step: what the training loop then need not pay for (on one worker, a Study B generation pass
    every 10 steps costs more than a quarter of the 10 steps: prefill and decoding of every item)."""

    metrics: list[str] = Field(..., min_length=1, description="Registered metric names: 'rouge_l', 'reward', ….")
    subset: int | None = Field(None, ge=1, description="Test items their generation metrics score; null = all.")
    base_model: bool = Field(True, description="Also score the model as loaded, at step 0 (no checkpoint there).")
    delete_checkpoints: bool = Field(
        False, description="Delete each eval checkpoint once scored (and its run tag): their disk holds models."
    )
    while_training: bool = Field(
        True,
        description="Score each checkpoint as soon as it is written, beside the training (where the cluster has "
        "room for a task of one worker's size); false = only once the trial has trained.",
    )


class SelectConfig(Section):
    """Checkpoint selection: the evaluation step where `metric` on set `set` is best; the trial's result is the
    test split's scores at that step (`selected/test_…`)."""

    set: str = Field(..., description="An evaluate.sets name, usually 'valid'.")
    metric: str = Field("loss", description="One of that set's metrics; its macro (or overall) value decides.")


class EvaluateConfig(Section):
    """Generation metrics in the loop and how their replies are decoded (greedy unless `do_sample`)."""

    in_loop: list[InLoopMetrics] = Field(
        [], description="Groups of generation metrics evaluated during training (loss runs every train.eval_every)."
    )
    max_new_tokens: int = Field(64, ge=1, description="Tokens a generated reply may take at most.")
    batch_size: int = Field(16, ge=1, description="Prompts per generate call on one worker.")
    do_sample: bool = Field(False, description="Sample replies instead of greedy decoding (seeded by the trial).")
    temperature: float = Field(0.9, gt=0, description="Sampling temperature (only with do_sample).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass (only with do_sample).")
    reward_model: RewardModelConfig | None = Field(None, description="The reward model of the `reward` metric.")
    sets: list[EvalSetConfig] = Field([], description="Named evaluation sets beside the test split (valid, OOD).")
    select: SelectConfig | None = Field(None, description="Pick the best evaluation step on a set; null = none.")
    on_checkpoints: CheckpointMetrics | None = Field(
        None, description="Metrics scored on the eval checkpoints, in Ray tasks beside the trial; null = none."
    )

    @model_validator(mode="after")
    def _loss_has_its_cadence(self) -> EvaluateConfig:
        for index, group in enumerate(self.in_loop):
            if "loss" in group.metrics:
                raise ValueError(
                    f"in_loop[{index}]: 'loss' runs every train.eval_every steps on the whole test set; list only "
                    "generation metrics here"
                )
        names = [name for group in self.in_loop for name in group.metrics]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            # One curve per metric: two cadences or subsets would interleave under the same metric key.
            raise ValueError(f"in_loop: metric(s) listed more than once: {repeated}")
        set_names = [entry.name for entry in self.sets]
        twice = sorted({name for name in set_names if set_names.count(name) > 1})
        if twice:
            raise ValueError(f"sets: name(s) used more than once: {twice}")
        if self.select is not None:
            chosen = next((entry for entry in self.sets if entry.name == self.select.set), None)
            if chosen is None:
                raise ValueError(f"select.set {self.select.set!r} is not one of evaluate.sets: {set_names or 'none'}")
            if self.select.metric not in chosen.metrics:
                raise ValueError(
                    f"select.metric {self.select.metric!r} is not evaluated on set {chosen.name!r} "
                    f"(its metrics: {chosen.metrics})"
                )
        return self
