"""On a real two-node Ray cluster (two raylets on 127.0.0.1, one CPU each), the sweep refuses stores only the
driver's node can reach before any data loads, and a hub token reaches workers on both nodes without
appearing in any log, ours or Ray's."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from dynamics.config import SweepConfig, parse_config
from dynamics.sweep.driver import run_sweep
from dynamics.sweep.preflight import PreflightError
from dynamics.sweep.runtime import alive_nodes, prepare_environment, start_ray
from dynamics.tracking import default_tracking_uri

TINY = {"builtin": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}}
NODE = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}


def study(work: Path, **sections: Any) -> SweepConfig:
    """One trial of the built-in data and a tiny model (what a real sweep would load if nothing refused it)."""
    return parse_config(
        {
            "name": "cluster-stores",
            "workdir": str(work),
            "data": {"source": "builtin", "options": {"per_train_task": 2, "per_test_task": 1}},
            "models": {"tiny": TINY},
            "train": {"global_batch_size": 16, "micro_batch_size": 8, "max_length": 64},
            "scaling": {"num_workers": 2, "cpus_per_worker": 0.5},
            "grid": {"volume": [16], "model": ["tiny"], "permutation": ["nft"], "seed": [0]},
            **sections,
        },
        origin="study.yaml",
    )


@pytest.fixture(scope="module")
def two_nodes():
    """A head and a worker node; the session's local Ray (if one is up) is stopped and started again after."""
    import ray
    from ray.cluster_utils import Cluster

    was_running = ray.is_initialized()
    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    try:
        cluster.add_node(**NODE)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        if was_running:
            start_ray(prepare_environment(study(Path("unused"))))


@pytest.fixture
def on_cluster(two_nodes, monkeypatch: pytest.MonkeyPatch):
    """RAY_ADDRESS names the two-node cluster; whatever joined it leaves after the test."""
    import ray

    monkeypatch.setenv("RAY_ADDRESS", two_nodes.address)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield two_nodes
    ray.shutdown()


def refusal(config: SweepConfig) -> str:
    with pytest.raises(PreflightError) as caught:
        run_sweep(config, origin="study.yaml")
    assert alive_nodes() == 2  # the driver joined the two-node cluster, not an embedded one
    return str(caught.value)


def nothing_loaded(work: Path) -> bool:
    """Only the workdir lock: no data cache, no built model, no MLflow store, no Ray results."""
    return sorted(path.name for path in work.iterdir()) == [".dynamics.lock"]


@pytest.mark.parametrize("named_by", ["config", "env", "default"])
def test_a_sqlite_store_is_refused_before_any_data_loads(on_cluster, tmp_path, monkeypatch, named_by):
    work = tmp_path / "work"
    uri = default_tracking_uri(work) if named_by == "default" else f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = {"tracking": {"uri": uri}} if named_by == "config" else {}
    if named_by == "env":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    message = refusal(study(work, storage_path="s3://dynamics-test/never-written", **tracking))
    (line,) = message.splitlines()
    assert line.startswith("study.yaml: key 'tracking.uri': ") and uri in line and "2 nodes" in line
    assert "MLflow server" in line and "http://" in line
    assert nothing_loaded(work)


def test_a_local_storage_path_is_refused_with_every_other_problem(on_cluster, tmp_path):
    work, storage = tmp_path / "work", str(tmp_path / "ray_results")
    message = refusal(study(work, storage_path=storage, tracking={"uri": "http://127.0.0.1:9"}))
    storage_line, tracking_line = message.splitlines()
    assert storage_line.startswith("study.yaml: key 'storage_path': ") and storage in storage_line
    assert "2 nodes" in storage_line and "s3://" in storage_line and "NFS" in storage_line
    assert "cannot reach the MLflow server at http://127.0.0.1:9" in tracking_line  # not hidden by the first
    assert nothing_loaded(work)


def test_a_hub_token_reaches_workers_on_both_nodes_and_no_log(on_cluster, tmp_path, monkeypatch, caplog, capfd):
    """The nodes started before HF_TOKEN was set, so only the job's runtime_env can bring it to their workers."""
    import ray

    monkeypatch.setenv("HF_TOKEN", "secret-value")
    ray_logger = logging.getLogger("ray")  # Ray's logger does not propagate to caplog's root handler
    ray_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.DEBUG):
            start_ray(prepare_environment(study(tmp_path / "work")))
    finally:
        ray_logger.removeHandler(caplog.handler)

    @ray.remote(num_cpus=1, scheduling_strategy="SPREAD")
    class Probe:
        def token(self) -> tuple[str | None, str]:
            return os.environ.get("HF_TOKEN"), ray.get_runtime_context().get_node_id()

    probes = [Probe.remote() for _ in range(2)]  # one CPU per node: one probe on each
    seen = ray.get([probe.token.remote() for probe in probes])
    assert {token for token, _ in seen} == {"secret-value"} and len({node for _, node in seen}) == 2
    assert caplog.records and "secret-value" not in caplog.text
    assert "secret-value" not in "".join(capfd.readouterr())
    nodes = [on_cluster.head_node, *on_cluster.worker_nodes]
    logs = {Path(node.get_session_dir_path()) / "logs" for node in nodes}
    files = [file for folder in logs for file in folder.rglob("*") if file.is_file()]
    leaked = [file for file in files if b"secret-value" in file.read_bytes()]
    assert leaked == []  # runtime_env env vars would be in runtime_env_agent.log on every node
