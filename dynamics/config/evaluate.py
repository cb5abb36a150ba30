"""The `evaluate:` section (SPEC §4): which metrics run inside the training loop, on what, and how replies decode.

Test loss runs every `train.eval_every` steps as before; the generation metrics (ROUGE, exact match, the
reward-model score, the per-ability scores) cost a decoding pass each, so each group of them declares its own
cadence and, optionally, a seeded subset of the test set stratified by task. Metric names are strings here and are
resolved against the metric registry by the planning step (`dynamics.sweep.plan`), which names an unknown one.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from dynamics.config.base import Section
from dynamics.config.builtin_model import BuiltinModelConfig
from dynamics.config.paths import ExpandedPath


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
        return self
