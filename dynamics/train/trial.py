"""One Ray Tune trial = one grid point: a Tune function that builds and fits a `TorchTrainer` (Train V2).

The trial opens its MLflow child run (grid factors as params, the arrangement hash as a tag), hands the
arranged items to the DeepSpeed workers, and marks the run FINISHED or FAILED with the error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from dynamics.arrange.artifact import ArrangementRef, order_from_bytes
from dynamics.config import SweepConfig
from dynamics.models import ModelSource
from dynamics.train.loop import TrialInputs, train_loop_per_worker

GRID_FACTORS = ("volume", "model", "permutation", "seed")


@dataclass(frozen=True)
class SweepInputs:
    """What every trial shares, put once into the object store by `tune.with_parameters`."""

    config: dict[str, Any]  # SweepConfig.model_dump()
    train_messages: dict[str, list[dict[str, str]]]  # id → messages, the training pool
    test_ids: list[str]
    test_tasks: list[str]
    test_categories: list[str]
    test_messages: list[list[dict[str, str]]]
    arrangements: dict[str, ArrangementRef]  # trial_key(volume, permutation, seed) → artifact (hash, path)
    # The artifacts' contents travel in the object store: a trial may run on a node without the driver's disk.
    orders: dict[str, bytes]  # trial_key → order.parquet bytes
    arrangement_stats: dict[str, dict[str, Any]]  # trial_key → arrangement.json "derived"
    models: dict[str, ModelSource]
    tracking_uri: str
    parent_run_id: str
    storage_path: str
    extra_env: dict[str, str] = field(default_factory=dict)


def arrangement_key(volume: int, permutation: str, seed: int) -> str:
    return f"v{volume}-{permutation}-s{seed}"


def trial_name(factors: dict[str, Any]) -> str:
    return f"{factors['model']}-v{factors['volume']}-{factors['permutation']}-s{factors['seed']}"


def run_trial(factors: dict[str, Any], shared: SweepInputs) -> None:
    """Tune function: fit one TorchTrainer for one grid point and report its final metrics to Tune."""
    from mlflow.tracking import MlflowClient
    from ray import tune
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from dynamics.tracking import set_tags, start_run

    config = SweepConfig.model_validate(shared.config)
    started = time.time()
    name = trial_name(factors)
    key = arrangement_key(factors["volume"], factors["permutation"], factors["seed"])
    ref = shared.arrangements[key]
    order = order_from_bytes(shared.orders[key])
    train_ids = order.column("id").to_pylist()
    source = shared.models[factors["model"]]

    client = MlflowClient(shared.tracking_uri)
    params = {factor: factors[factor] for factor in GRID_FACTORS} | {
        "num_workers": config.scaling.num_workers,
        "zero_stage": config.train.zero_stage,
        "global_batch_size": config.train.global_batch_size,
        "lr": config.train.lr,
        "template": config.train.template,
        "model_source": source.model,
        "num_parameters": source.num_parameters or "unknown",
        "arrangement_size": ref.size,
    }
    params |= {f"arrangement_{name}": value for name, value in shared.arrangement_stats[key].items()}
    tags = {"arrangement_hash": ref.content_hash, "arrangement_path": ref.folder, "sweep": config.name}
    run_id = start_run(client, config.tracking.experiment, name, params, tags, parent_run_id=shared.parent_run_id)

    inputs = TrialInputs(
        model=source,
        train=config.train.model_dump(),
        train_ids=train_ids,
        train_messages=[shared.train_messages[item_id] for item_id in train_ids],
        test_ids=shared.test_ids,
        test_tasks=shared.test_tasks,
        test_categories=shared.test_categories,
        test_messages=shared.test_messages,
        tracking_uri=shared.tracking_uri,
        run_id=run_id,
        trial_started_at=started,
    )
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"inputs": inputs},
        scaling_config=ScalingConfig(
            num_workers=config.scaling.num_workers,
            use_gpu=config.scaling.use_gpu,
            resources_per_worker={"CPU": config.scaling.cpus_per_worker},
        ),
        run_config=RunConfig(name=f"{config.name}-{name}-{run_id[:8]}", storage_path=shared.storage_path),
    )
    try:
        result = trainer.fit()
    except Exception as error:
        set_tags(client, run_id, {"error": f"{type(error).__name__}: {error}"[:5000]})
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    final = {k: v for k, v in (result.metrics or {}).items() if isinstance(v, int | float)}
    tune.report(final | {"trial_wall_s": time.time() - started})
