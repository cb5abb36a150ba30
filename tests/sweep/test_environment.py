"""The sweep's environment: which tracking store, whether the hub is off, what workers get, which stores a
cluster refuses. Pure functions and `os.environ` only; the real cluster is in tests/integration."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from dynamics.config import parse_config
from dynamics.sweep import preflight as preflight_module
from dynamics.sweep.preflight import PreflightError, cluster_store_problems, filesystem_type, needs_hub, preflight
from dynamics.sweep.runtime import HUB_TOKENS, job_runtime_env, prepare_environment
from dynamics.tracking import default_tracking_uri, resolve_tracking_uri

BUILTIN = {"builtin": {"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1}}
SET_BY_PREPARE = (
    "TOKENIZERS_PARALLELISM",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S",
    "USE_HUB_KERNELS",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER",
    "RAY_USAGE_STATS_ENABLED",
    "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "DS_ACCELERATOR",
    "RAY_ADDRESS",
    *HUB_TOKENS,
)


def config(models=None, **sections):
    models = models or {"m": BUILTIN}
    return parse_config({"models": models, "grid": {"model": list(models)}, **sections})


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No variable prepare_environment sets (conftest sets several); every one restored after the test."""
    for key in SET_BY_PREPARE:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


# --- the tracking store -------------------------------------------------------------------------------------


def test_the_config_uri_wins_over_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    assert resolve_tracking_uri("http://from-config:5000", tmp_path) == "http://from-config:5000"


def test_the_environment_wins_over_the_embedded_default(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    assert resolve_tracking_uri(None, tmp_path) == "http://from-env:5000"


def test_the_embedded_sqlite_store_when_neither_names_one(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = resolve_tracking_uri(None, tmp_path)
    assert uri == default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


# --- what needs the hub -------------------------------------------------------------------------------------


def test_built_in_models_embedder_and_data_need_nothing_from_the_hub():
    assert needs_hub(config()) == []


def test_local_folders_need_nothing_from_the_hub(tmp_path):
    (tmp_path / "llama").mkdir()
    (tmp_path / "niv2").mkdir()
    local = config(
        {"m": {"pretrained": str(tmp_path / "llama"), "tokenizer": str(tmp_path / "llama")}},
        arrange={"embedding_model": str(tmp_path / "minilm")},  # an absolute path is local even before it exists
        data={"source": "niv2", "path": str(tmp_path / "niv2")},
    )
    assert needs_hub(local) == []


def test_every_hub_name_is_named_by_its_key():
    hub = config(
        {"big": {"pretrained": "meta-llama/Llama-2-7b-hf"}, "tiny": {**BUILTIN, "tokenizer": "gpt2"}},
        arrange={"embedding_model": "sentence-transformers/all-mpnet-base-v2"},
        data={
            "source": "niv2",
            "path": "Muennighoff/natural-instructions",
            "options": {"tokenizer": "meta-llama/Llama-2-7b-hf"},
            "test_source": {"source": "dolly", "path": "databricks/databricks-dolly-15k"},
        },
    )
    assert needs_hub(hub) == [
        "models.big.pretrained",
        "models.tiny.tokenizer",
        "arrange.embedding_model",
        "data.path",
        "data.options.tokenizer",
        "data.test_source.path",
    ]


def test_a_model_outside_the_grid_does_not_turn_the_hub_on():
    off_grid = parse_config(
        {"models": {"m": BUILTIN, "big": {"pretrained": "meta-llama/Llama-2-7b-hf"}}, "grid": {"model": ["m"]}}
    )
    assert needs_hub(off_grid) == []


# --- prepare_environment ------------------------------------------------------------------------------------


def test_a_local_run_of_built_in_parts_turns_the_hub_off(clean_env):
    env = prepare_environment(config())
    assert env["HF_HUB_OFFLINE"] == env["HF_DATASETS_OFFLINE"] == "1"
    assert env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0" and env["DS_ACCELERATOR"] == "cpu"
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # the driver's own loads are offline too


def test_a_hub_model_leaves_the_hub_on_and_says_which_key(clean_env, caplog):
    with caplog.at_level(logging.INFO, logger="dynamics.sweep.runtime"):
        env = prepare_environment(config({"big": {"pretrained": "meta-llama/Llama-2-7b-hf"}}))
    assert "HF_HUB_OFFLINE" not in env and "HF_HUB_OFFLINE" not in os.environ
    assert "HF_DATASETS_OFFLINE" not in env and "HF_DATASETS_OFFLINE" not in os.environ
    assert "models.big.pretrained" in caplog.text


def test_a_value_the_user_set_wins(clean_env):
    clean_env.setenv("HF_HUB_OFFLINE", "0")
    clean_env.setenv("DS_ACCELERATOR", "cuda")
    env = prepare_environment(config())
    assert env["HF_HUB_OFFLINE"] == "0" and env["DS_ACCELERATOR"] == "cuda"


def test_on_a_cluster_networking_and_the_hub_are_left_to_the_cluster(clean_env):
    clean_env.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    env = prepare_environment(config())
    assert not {"HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"} & set(env)
    assert env["TOKENIZERS_PARALLELISM"] == "false"


def test_a_gpu_anywhere_in_the_config_keeps_deepspeed_off_the_cpu_accelerator(clean_env):
    per_model_gpu = config({"m": {**BUILTIN, "scaling": {"use_gpu": True}}})
    assert "DS_ACCELERATOR" not in prepare_environment(per_model_gpu)
    assert prepare_environment(config())["DS_ACCELERATOR"] == "cpu"


def test_hub_tokens_reach_the_workers_and_no_log(clean_env, caplog):
    clean_env.setenv("HF_TOKEN", "secret-value")
    clean_env.setenv("HUGGING_FACE_HUB_TOKEN", "secret-value-2")
    with caplog.at_level(logging.DEBUG):
        env = prepare_environment(config({"big": {"pretrained": "meta-llama/Llama-2-7b-hf"}}))
    assert env["HF_TOKEN"] == "secret-value" and env["HUGGING_FACE_HUB_TOKEN"] == "secret-value-2"
    assert caplog.records and "secret-value" not in caplog.text


def test_no_token_no_token_key(clean_env):
    assert not set(HUB_TOKENS) & set(prepare_environment(config()))
    assert "worker_process_setup_hook" not in job_runtime_env(prepare_environment(config()))


def test_tokens_travel_in_a_setup_hook_not_as_logged_env_vars(clean_env):
    runtime_env = job_runtime_env({"TOKENIZERS_PARALLELISM": "false", "HF_TOKEN": "secret-value"})
    assert runtime_env["env_vars"] == {"TOKENIZERS_PARALLELISM": "false"}  # what Ray's agent logs
    assert "secret-value" not in repr(runtime_env)
    runtime_env["worker_process_setup_hook"]()  # what each worker process runs at start
    assert os.environ["HF_TOKEN"] == "secret-value"


# --- stores on a cluster ------------------------------------------------------------------------------------


def test_single_host_stores_are_refused_on_two_nodes_each_on_its_own_line(tmp_path):
    uri, storage = f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "ray_results")
    tracking, folder = cluster_store_problems(uri, storage, nodes=2)
    assert tracking.startswith("key 'tracking.uri': ") and uri in tracking and "2 nodes" in tracking
    assert "http://" in tracking and "MLFLOW_TRACKING_URI" in tracking
    assert folder.startswith("key 'storage_path': ") and storage in folder and "2 nodes" in folder
    assert "s3://" in folder and "gs://" in folder and "NFS" in folder


def test_shared_stores_pass_on_any_number_of_nodes():
    assert cluster_store_problems("http://mlflow.internal:5000", "s3://bucket/runs", nodes=64) == []
    assert cluster_store_problems("databricks", "gs://bucket/runs", nodes=2) == []


def test_a_folder_on_a_network_filesystem_is_shared_storage(monkeypatch):
    monkeypatch.setattr(preflight_module, "filesystem_type", lambda path, mounts=None: "nfs4")
    assert cluster_store_problems("http://mlflow:5000", "/mnt/cluster_storage", nodes=4) == []


def test_one_node_passes_with_a_warning_about_autoscaling(tmp_path, caplog):
    uri = f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}"
    with caplog.at_level(logging.WARNING, logger="dynamics.sweep.preflight"):
        preflight(config(), tmp_path / "work", uri, str(tmp_path / "ray_results"), "x.yaml", nodes=1)
    tracking, storage = (record.getMessage() for record in caplog.records)
    assert tracking.startswith("x.yaml: key 'tracking.uri': ") and "autoscaler" in tracking
    assert storage.startswith("x.yaml: key 'storage_path': ") and "autoscaler" in storage


def test_the_refusal_is_listed_with_the_other_preflight_problems(tmp_path):
    with pytest.raises(PreflightError) as caught:
        preflight(config(), tmp_path / "work", "http://127.0.0.1:9", str(tmp_path / "runs"), "x.yaml", nodes=3)
    storage, tracking = str(caught.value).splitlines()
    assert storage.startswith("x.yaml: key 'storage_path': ") and "3 nodes" in storage
    assert tracking.startswith("x.yaml: key 'tracking.uri': cannot reach the MLflow server")


def test_a_local_run_checks_no_cluster_store(tmp_path):
    preflight(config(), tmp_path / "work", f"sqlite:///{tmp_path / 'db'}", str(tmp_path / "runs"), "x.yaml")


MOUNTS = """\
/dev/vda / ext4 rw 0 0
server:/export /mnt/shared nfs4 rw 0 0
/dev/vdb /mnt/shared/scratch xfs rw 0 0
gcsfuse /mnt/my\\040bucket fuse.gcsfuse rw 0 0
"""


@pytest.mark.parametrize(
    "path, kind",
    [
        ("/home/me/runs", "ext4"),
        ("/mnt/shared", "nfs4"),
        ("/mnt/shared/runs/not-yet-made", "nfs4"),
        ("/mnt/shared/scratch/runs", "xfs"),  # the deepest mount point holding the path
        ("/mnt/sharedx/runs", "ext4"),  # a prefix of the name is not a parent folder
        ("/mnt/my bucket/runs", "fuse.gcsfuse"),  # /proc/mounts escapes the space
    ],
)
def test_the_filesystem_of_a_path_is_its_deepest_mount(path, kind):
    assert filesystem_type(Path(path), MOUNTS) == kind


def test_workers_use_no_hub_kernels_unless_the_user_opts_in(clean_env):
    # transformers fetches kernels from the hub at run time on CUDA; a sweep's workers get them only on request.
    assert prepare_environment(config())["USE_HUB_KERNELS"] == "0"
    clean_env.setenv("USE_HUB_KERNELS", "1")
    assert prepare_environment(config())["USE_HUB_KERNELS"] == "1"


def test_the_switch_is_the_one_transformers_reads(clean_env):
    from transformers.integrations import hub_kernels

    clean_env.setenv("USE_HUB_KERNELS", prepare_environment(config())["USE_HUB_KERNELS"])
    assert not hub_kernels._kernels_enabled()
