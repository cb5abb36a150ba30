"""Fixtures for integration tests: one real local Ray cluster per session, real MLflow stores, tiny models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dynamics.config import BuiltinModelConfig, ModelConfig, SweepConfig
from dynamics.models import ModelSource, materialise

TINY = ModelConfig(
    builtin=BuiltinModelConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4)
)


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster on 127.0.0.1, shared by the session's integration tests."""
    import ray

    from dynamics.sweep.runtime import prepare_environment, start_ray

    start_ray(prepare_environment(SweepConfig(models={"tiny": TINY}, grid={"model": ["tiny"]})))  # CPU, offline
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> ModelSource:
    return materialise("tiny-test", TINY, tmp_path_factory.mktemp("models"))


@pytest.fixture
def tracking_uri(tmp_path) -> str:
    """A fresh SQLite MLflow store per test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def workdir(tmp_path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)
