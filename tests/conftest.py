"""Test-wide environment: offline, loopback-only Ray, CPU DeepSpeed. Set before Ray or HF are imported."""

import os

for _key, _value in {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "DS_ACCELERATOR": "cpu",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
    "MLFLOW_ALLOW_FILE_STORE": "false",
}.items():
    os.environ.setdefault(_key, _value)
os.environ.pop("RAY_ADDRESS", None)  # tests always start their own local cluster
os.environ.pop("MLFLOW_TRACKING_URI", None)  # a tracking server of the shell would catch every test's runs
for _key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
    os.environ.pop(_key, None)  # no test may reach the hub with a real credential


import pytest  # noqa: E402


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything starts or joins a Ray cluster (the check for "before any Ray work")."""
    import ray

    def fail_if_ray_starts(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started before the config and data were known to be good")

    monkeypatch.setattr(ray, "init", fail_if_ray_starts)
