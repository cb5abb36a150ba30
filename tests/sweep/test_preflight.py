"""Preflight: models, embedder, tracking store and folders checked in seconds, each problem on one line."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from dynamics.config import parse_config
from dynamics.sweep.preflight import PreflightError, preflight, resolvable_problem, tracking_problem

BUILTIN = {"builtin": {"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1}}


def config(models=None, **sections):
    models = models or {"m": BUILTIN}
    return parse_config({"models": models, "grid": {"model": list(models)}, **sections})


def run_preflight(cfg, tmp_path, uri=None):
    preflight(cfg, tmp_path / "work", uri or f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}", None, "x.yaml")


def test_builtin_models_and_the_offline_embedder_pass(tmp_path):
    run_preflight(config(), tmp_path)


def test_a_missing_local_model_folder_is_named_with_its_key(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(PreflightError) as caught:
        run_preflight(config({"big": {"pretrained": str(missing)}}), tmp_path)
    assert str(caught.value) == f"x.yaml: key 'models.big.pretrained': model folder {missing} does not exist"


def test_a_folder_without_model_files_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    problem = resolvable_problem("models.m.pretrained", str(tmp_path / "empty"), ("config.json",), "model")
    assert problem is not None and "has none of config.json" in problem


def test_an_uncached_hub_name_fails_offline_naming_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(PreflightError) as caught:
        run_preflight(config({"l7": {"pretrained": "meta-llama/Llama-2-7b-hf"}}), tmp_path)
    assert "models.l7.pretrained" in str(caught.value) and "not in the local Hugging Face cache" in str(caught.value)


def test_a_malformed_hub_name_is_named(tmp_path):
    problem = resolvable_problem("arrange.embedding_model", "not a//name", ("modules.json",), "embedding model")
    assert problem is not None and "neither a local folder nor a valid hub name" in problem


def test_a_missing_embedding_model_is_named(tmp_path):
    with pytest.raises(PreflightError, match="arrange.embedding_model"):
        run_preflight(config(arrange={"embedding_model": str(tmp_path / "minilm")}), tmp_path)


def test_every_problem_is_listed_one_per_line(tmp_path):
    models = {"a": {"pretrained": str(tmp_path / "a")}, "b": {"pretrained": str(tmp_path / "b")}}
    with pytest.raises(PreflightError) as caught:
        run_preflight(config(models, arrange={"embedding_model": str(tmp_path / "e")}), tmp_path)
    lines = str(caught.value).splitlines()
    assert len(lines) == 3 and all(line.startswith("x.yaml: key '") for line in lines)


def test_an_unwritable_workdir_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PreflightError, match="key 'workdir': cannot create .*file is not a folder"):
        preflight(config(), blocker / "work", f"sqlite:///{tmp_path / 'db'}", None, "x.yaml")


def test_an_unreachable_tracking_server_fails_in_seconds():
    started = time.perf_counter()
    problem = tracking_problem("http://127.0.0.1:9")  # the discard port: nothing listens
    assert problem is not None and "cannot reach the MLflow server at http://127.0.0.1:9" in problem
    assert time.perf_counter() - started < 10


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the stdlib's name)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


def test_a_server_answering_health_passes():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert tracking_problem(f"http://127.0.0.1:{server.server_port}") is None
    finally:
        server.shutdown()
