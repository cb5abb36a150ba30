"""What every trial of a sweep shares, typed end to end, and how one grid point becomes a `TrialSpec`.

The payload goes once into Ray's object store (`tune.with_parameters`); each Tune trial turns its grid point
into a spec there. Arrangements travel as Parquet bytes and the data as Arrow tables: a trial may run on a
node that cannot see the driver's disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from dynamics.arrange.artifact import ArrangementKey, ArrangementRef, arrangement_key_of
from dynamics.config import RECIPE_FAMILIES, SweepConfig, TrialFactors, grid_recipe_name
from dynamics.io import table_from_parquet_bytes
from dynamics.models import ModelSource
from dynamics.tracking import TrackedRun
from dynamics.train.trial import TrialSpec

if TYPE_CHECKING:
    from dynamics.sweep.study import PreparedStudy

POOL_COLUMNS = ("id", "messages")
# what the generation metrics and the ability scorer read beside the messages
TEST_COLUMNS = ("id", "task", "category", "messages", "references", "ability", "question_format", "choices", "answer")


@dataclass(frozen=True)
class ShippedArrangement:
    """An arrangement as trials receive it: where it lives, its order's bytes, and values derived on the way."""

    ref: ArrangementRef
    order: bytes  # order.parquet
    derived: dict[str, Any]  # arrangement.json "derived": WSD weights, TMA round statistics


def trial_name(factors: TrialFactors | Mapping[str, object]) -> str:
    """The child run's name, read as its factors in the MLflow UI: `n=2560 model=7b perm=nft seed=1` (a
    mapping: factors not yet resolved, such as a volume of 'all' in a dry run)."""
    named = factors.model_dump() if isinstance(factors, TrialFactors) else factors
    recipe = named.get("recipe")
    if recipe is None:
        data = f"n={named['volume']}"
    elif recipe in RECIPE_FAMILIES:
        data = grid_recipe_name(recipe, named["volume"])
    else:
        data = f"{recipe} n={named['volume']}"
    return f"{data} model={named['model']} perm={named['permutation']} seed={named['seed']}"


@dataclass(frozen=True)
class ShippedReplicate:
    """One grid seed's data as trials receive it."""

    train_pool: pa.Table  # POOL_COLUMNS of every training example
    test: pa.Table  # TEST_COLUMNS of every test example
    eval_sets: tuple[tuple[str, pa.Table], ...] = ()  # evaluate.sets: (name, TEST_COLUMNS of its rows)


def shipped_replicates(study: PreparedStudy) -> dict[int, ShippedReplicate]:
    """Every seed's data, cut to the columns trials read; seeds that share data share one object (sent once)."""
    shipped: dict[int, ShippedReplicate] = {}
    by_object: dict[int, ShippedReplicate] = {}
    for seed in study.config.grid.seed:
        replicate = study.replicate(seed)
        if id(replicate) not in by_object:
            by_object[id(replicate)] = ShippedReplicate(
                replicate.train_pool.select(list(POOL_COLUMNS)),
                replicate.test.select(list(TEST_COLUMNS)),
                tuple((name, rows.select(list(TEST_COLUMNS))) for name, rows in replicate.eval_sets),
            )
        shipped[seed] = by_object[id(replicate)]
    return shipped


@dataclass(frozen=True)
class SweepPayload:
    config: SweepConfig
    replicates: dict[int, ShippedReplicate]  # grid seed → its data
    arrangements: dict[ArrangementKey, ShippedArrangement]
    models: dict[str, ModelSource]
    reward_model: str | None  # evaluate.reward_model materialised: a folder or a hub name
    sweep_run: TrackedRun
    storage_path: str

    def trial(self, factors: TrialFactors) -> TrialSpec:
        """The spec of the trial at grid point `factors`."""
        config = self.config
        data = self.replicates[factors.seed]
        shipped = self.arrangements[arrangement_key_of(factors)]
        order_ids = table_from_parquet_bytes(shipped.order).column("id")
        rows = pc.index_in(order_ids, value_set=data.train_pool.column("id"))
        if rows.null_count:
            raise ValueError(f"arrangement {shipped.ref.folder} names items that are not in the training pool")
        source = self.models[factors.model]
        train, scaling = config.train_for(factors.model), config.scaling_for(factors.model)
        params = factors.model_dump() | {
            "num_workers": scaling.num_workers,
            "zero_stage": train.zero_stage,
            "micro_batch_size": train.micro_batch_size,
            "global_batch_size": train.global_batch_size,
            "precision": train.precision,
            "lr": train.lr,
            "template": train.template,
            "model_source": source.model,
            "num_parameters": source.num_parameters or "unknown",
            "arrangement_size": shipped.ref.size,
        }
        params |= {f"arrangement_{name}": value for name, value in shipped.derived.items()}
        tags = {
            "arrangement_hash": shipped.ref.content_hash,
            "arrangement_path": shipped.ref.folder,
            "sweep": config.name,
        } | factors.model_dump()  # the factors as tags too: the MLflow UI groups runs by tag
        return TrialSpec(
            name=trial_name(factors),
            sweep_name=config.name,
            params=params,
            tags=tags,
            model=source,
            train=train,
            scaling=scaling,
            arranged=data.train_pool.take(rows),
            test=data.test,
            sweep_run=self.sweep_run,
            storage_path=self.storage_path,
            seed=factors.seed,
            checkpoints=config.checkpoints,
            evaluate=config.evaluate,
            reward_model=self.reward_model,
            eval_sets=data.eval_sets,
        )
