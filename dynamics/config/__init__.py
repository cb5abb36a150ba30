"""Typed, validated sweep configuration (pure schema: this package imports no stage).

    from dynamics.config import load_config, parse_overrides
    config = load_config("experiments/configs/offline.yaml", parse_overrides(["train.lr=1e-4"]))
"""

from dynamics.config.builtin_model import BuiltinModelConfig
from dynamics.config.data import (
    FIXED_RECIPES,
    RECIPE_FAMILIES,
    RECIPE_NAMES,
    STUDY_A_CAPS,
    SYNTHETIC,
    DataConfig,
    EvalSourceConfig,
    Recipe,
    SampleConfig,
    check_grid_recipe,
    grid_recipe_name,
    named_recipe,
    sized_recipe,
)
from dynamics.config.errors import ConfigError
from dynamics.config.evaluate import (
    CheckpointMetrics,
    EvalSetConfig,
    EvaluateConfig,
    InLoopMetrics,
    RewardModelConfig,
    SelectConfig,
)
from dynamics.config.loading import load_config, parse_config
from dynamics.config.overrides import parse_overrides
from dynamics.config.schema import (
    GRID_FACTORS,
    ArrangeConfig,
    CheckpointConfig,
    GridConfig,
    ModelConfig,
    ScalingConfig,
    ScalingOverrides,
    SweepConfig,
    TrackingConfig,
    TrainConfig,
    TrainOverrides,
    TrialFactors,
)

__all__ = [
    "FIXED_RECIPES",
    "GRID_FACTORS",
    "RECIPE_FAMILIES",
    "RECIPE_NAMES",
    "STUDY_A_CAPS",
    "SYNTHETIC",
    "ArrangeConfig",
    "BuiltinModelConfig",
    "CheckpointConfig",
    "ConfigError",
    "DataConfig",
    "CheckpointMetrics",
    "EvalSetConfig",
    "EvalSourceConfig",
    "EvaluateConfig",
    "GridConfig",
    "InLoopMetrics",
    "ModelConfig",
    "Recipe",
    "RewardModelConfig",
    "SelectConfig",
    "SampleConfig",
    "ScalingConfig",
    "ScalingOverrides",
    "SweepConfig",
    "TrackingConfig",
    "TrainConfig",
    "TrainOverrides",
    "TrialFactors",
    "load_config",
    "check_grid_recipe",
    "grid_recipe_name",
    "named_recipe",
    "sized_recipe",
    "parse_config",
    "parse_overrides",
]
