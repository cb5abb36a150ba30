"""Typed, validated sweep configuration (pure schema: this package imports no stage).

    from dynamics.config import load_config
    config = load_config("experiments/configs/offline.yaml", {"train.lr": 1e-4})
"""

from dynamics.config.data import (
    RECIPE_NAMES,
    STUDY_A_CAPS,
    SYNTHETIC,
    DataConfig,
    EvalSourceConfig,
    Recipe,
    SampleConfig,
    named_recipe,
)
from dynamics.config.loading import ConfigError, load_config, parse_config
from dynamics.config.schema import (
    GRID_FACTORS,
    ArrangeConfig,
    BuiltinModelConfig,
    GridConfig,
    ModelConfig,
    ScalingConfig,
    SweepConfig,
    TrackingConfig,
    TrainConfig,
    TrialFactors,
)

__all__ = [
    "GRID_FACTORS",
    "RECIPE_NAMES",
    "STUDY_A_CAPS",
    "SYNTHETIC",
    "ArrangeConfig",
    "BuiltinModelConfig",
    "ConfigError",
    "DataConfig",
    "EvalSourceConfig",
    "GridConfig",
    "ModelConfig",
    "Recipe",
    "SampleConfig",
    "ScalingConfig",
    "SweepConfig",
    "TrackingConfig",
    "TrainConfig",
    "TrialFactors",
    "load_config",
    "named_recipe",
    "parse_config",
]
