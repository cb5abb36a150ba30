"""Checks on the cluster/ configs: they parse, Ray's own launcher schema accepts them, GPU workers scale
from zero with the head kept free of trials, and every command they show points at files that exist.

Run: `python -m pytest -q tests/cluster`
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
LAUNCHER_CONFIGS = ["aws.yaml", "gcp.yaml"]
RAYJOB = "kuberay-rayjob.yaml"
SWEEP = "experiments/sweep.py"
# `--config <path>` in any command shown in cluster/; `<study>` marks a placeholder the user fills in.
CONFIG_ARG = re.compile(r"--config[ =](\S+\.ya?ml)")
RAY_IMAGE = re.compile(r"rayproject/ray:(\d+\.\d+\.\d+)")


def _docs(name: str) -> list[dict]:
    """The non-empty YAML documents of cluster/<name>."""
    with open(CLUSTER / name) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _launcher(name: str) -> dict:
    (config,) = _docs(name)
    return config


def _header(name: str) -> str:
    """The leading comment block of cluster/<name>."""
    lines = (CLUSTER / name).read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    return "\n".join(header)


def _rayjob() -> dict:
    jobs = [d for d in _docs(RAYJOB) if d.get("kind") == "RayJob"]
    assert len(jobs) == 1, f"{RAYJOB}: expected one RayJob document, found {len(jobs)}"
    return jobs[0]


def _containers(group: dict) -> list[dict]:
    return group["template"]["spec"]["containers"]


def _gpu_worker_types(config: dict) -> dict[str, dict]:
    return {
        name: node
        for name, node in config["available_node_types"].items()
        if node.get("resources", {}).get("GPU", 0) > 0
    }


@pytest.mark.parametrize("path", sorted(CLUSTER.glob("*.yaml")), ids=lambda p: p.name)
def test_every_yaml_parses(path: Path) -> None:
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    assert docs, f"{path.name}: no YAML document"
    assert all(isinstance(d, dict) for d in docs), f"{path.name}: a document is not a mapping"


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_passes_ray_schema(name: str) -> None:
    util = pytest.importorskip("ray.autoscaler._private.util")
    # prepare_config fills provider defaults without calling the cloud; validate_config applies Ray's
    # cluster YAML schema, so a misspelt or misplaced field fails here instead of at `ray up`.
    config = util.prepare_config(_launcher(name))
    util.validate_config(config)


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_head_runs_no_trials(name: str) -> None:
    config = _launcher(name)
    head_type = config["head_node_type"]
    assert head_type in config["available_node_types"], f"{name}: head_node_type {head_type!r} undefined"
    resources = config["available_node_types"][head_type]["resources"]
    assert resources.get("CPU") == 0, f"{name}: head must advertise CPU 0, has {resources}"
    assert resources.get("GPU", 0) == 0, f"{name}: head must have no GPU, has {resources}"


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_gpu_workers_scale_from_zero(name: str) -> None:
    config = _launcher(name)
    gpu_types = _gpu_worker_types(config)
    assert gpu_types, f"{name}: no worker type with GPU resources"
    for type_name, node in gpu_types.items():
        assert node.get("min_workers") == 0, f"{name}: {type_name} min_workers must be 0"
        assert node.get("max_workers", 0) > 0, f"{name}: {type_name} can never start"
    assert config["idle_timeout_minutes"] > 0


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_installs_the_repo_and_shows_the_sweep(name: str) -> None:
    config = _launcher(name)
    synced = {remote for remote, local in config["file_mounts"].items() if local == "."}
    assert synced, f"{name}: file_mounts does not sync the working directory"
    setup = "\n".join(config["setup_commands"])
    assert any(f"pip install -q -e {remote}" in setup for remote in synced), (
        f"{name}: setup_commands do not `pip install -e` the synced repo {synced}"
    )
    assert "torch==2.13.0" in setup, f"{name}: setup_commands must pin torch before the editable install"
    header = _header(name)
    for command in (f"ray up cluster/{name}", f"ray dashboard cluster/{name}", f"ray down cluster/{name}"):
        assert command in header, f"{name}: header lacks `{command}`"
    assert "ray job submit --address http://127.0.0.1:8265 --working-dir ." in header
    assert SWEEP in header, f"{name}: header does not show {SWEEP}"


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_nodes_share_tracking_and_auth_env(name: str) -> None:
    config = _launcher(name)
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = "\n".join(config[key])
        assert "MLFLOW_TRACKING_URI=" in start, f"{name}: {key} do not set MLFLOW_TRACKING_URI"
        assert "RAY_AUTH_MODE=token" in start, f"{name}: {key} do not set RAY_AUTH_MODE=token"
        assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in start, f"{name}: laptop-only setting in {key}"
    assert "~/.ray/auth_token" in config["file_mounts"], f"{name}: the auth token is not copied to nodes"


def test_rayjob_runs_the_sweep() -> None:
    job = _rayjob()
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    assert spec["entrypoint"].startswith(f"python {SWEEP} --config "), spec["entrypoint"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert isinstance(spec["ttlSecondsAfterFinished"], int) and spec["ttlSecondsAfterFinished"] > 0
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert runtime_env["working_dir"] == "/home/ray/dynamics", "working_dir must be the image's repo copy"


def test_rayjob_autoscales_gpu_workers_from_zero() -> None:
    cluster = _rayjob()["spec"]["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    gpu_groups = [
        g
        for g in cluster["workerGroupSpecs"]
        if any("nvidia.com/gpu" in c["resources"].get("limits", {}) for c in _containers(g))
    ]
    assert gpu_groups, "no worker group requests nvidia.com/gpu"
    for group in gpu_groups:
        assert group["minReplicas"] == 0, f"{group['groupName']}: minReplicas must be 0"
        assert group["replicas"] == 0, f"{group['groupName']}: replicas must start at 0"
        assert group["maxReplicas"] > 0, f"{group['groupName']}: can never start"


def test_rayjob_pods_share_storage_and_tracking() -> None:
    claims = {d["metadata"]["name"]: d for d in _docs(RAYJOB) if d.get("kind") == "PersistentVolumeClaim"}
    cluster = _rayjob()["spec"]["rayClusterSpec"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "/mnt/shared" in mounts, f"{container['name']}: /mnt/shared not mounted"
            claim = volumes[mounts["/mnt/shared"]]["persistentVolumeClaim"]["claimName"]
            assert claim in claims, f"PVC {claim!r} is not defined in {RAYJOB}"
            assert claims[claim]["spec"]["accessModes"] == ["ReadWriteMany"]
            env = {e["name"] for e in container["env"]}
            assert "MLFLOW_TRACKING_URI" in env, f"{container['name']}: MLFLOW_TRACKING_URI not set"


def test_ray_version_is_the_same_everywhere() -> None:
    versions = {}
    for path in CLUSTER.iterdir():
        for version in RAY_IMAGE.findall(path.read_text()):
            versions.setdefault(version, set()).add(path.name)
    versions.setdefault(_rayjob()["spec"]["rayClusterSpec"]["rayVersion"], set()).add("rayVersion")
    assert len(versions) == 1, f"Ray versions differ across cluster/: {versions}"


def test_config_paths_in_cluster_exist() -> None:
    # Commands shown in cluster/ must run as written: a concrete --config path must be a real file.
    checked = []
    for path in sorted(CLUSTER.iterdir()):
        for config_path in CONFIG_ARG.findall(path.read_text()):
            if "<study>" in config_path:
                continue
            checked.append(config_path)
            assert (REPO / config_path).is_file(), f"{path.name} refers to missing {config_path}"
    assert checked, "no concrete --config path in cluster/ to check"
