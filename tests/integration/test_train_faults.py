"""A training worker dies mid-trial: the trial restarts from its resume checkpoint and ends as if nothing happened.

Two trials of one config (2 workers, ZeRO-2, 16 steps, eval every 2, resume checkpoints every 4) through the
real Ray Train path: one uninterrupted, one whose rank 1 is killed (`os._exit`) twice. First after step 5, the
step right after the checkpoint of step 4 (before the controller's next poll, had the worker not waited for Ray
to take the checkpoint in): the new worker group continues from it. Then after step 11, with the
newest checkpoint (step 8, saved by the restarted group) damaged just before: the next group skips it, naming
it, and falls back to step 4 again. Observed from outside the loop: a forward pre-hook records the token rows
each rank fed its embedding layer in every step (per process), rank 0 saves its weights at the end, and the
MLflow histories are read back from the store.
"""

from __future__ import annotations

import json
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import torch
from mlflow.tracking import MlflowClient
from ray import cloudpickle
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from dynamics.config import CheckpointConfig as ResumeConfig
from dynamics.config import TrainConfig
from dynamics.tracking import start_sweep_run
from dynamics.train.loop import WorkerInputs, train_loop_per_worker

# Ray workers cannot import a test module: its worker functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

TOTAL_STEPS = 16  # 64 items × 2 epochs / 8 per step
RESUME_ONLY = {"resume_load_s", "resumed_at_step"}  # what only a resumed attempt logs


def _tables() -> tuple[pa.Table, pa.Table]:
    rng = random.Random(7)
    rows = []
    for index in range(64):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        # The index makes every item's tokens unique, so a token row names exactly one item.
        rows.append([{"role": "user", "content": f"#{index}: {a}+{b}="}, {"role": "assistant", "content": str(a + b)}])
    arranged = pa.table({"id": [f"i{n}" for n in range(64)], "messages": rows})
    test = pa.table({"id": ["t0", "t1", "t2"], "task": ["add"] * 3, "category": ["math"] * 3, "messages": rows[:3]})
    return arranged, test


@dataclass
class _Recorder:
    """The test's eyes and hands in every worker: records each step's token rows, saves the final weights, and
    kills one rank once (a marker file keeps the restarted worker alive), after damaging a checkpoint if told."""

    out: str
    kill_rank: int | None = None
    # step → a file (relative to the Ray storage folder) to truncate before killing there, or None
    kills: dict[int, str | None] = field(default_factory=dict)
    forwards: list[Any] = field(default_factory=list)

    def record(self, module: torch.nn.Module, args: tuple) -> None:
        if isinstance(module, torch.nn.Embedding) and module.training and args:
            self.forwards.append(args[0].tolist())

    def __call__(self, rank: int, step: int, engine: Any) -> None:
        out = Path(self.out)
        with (out / f"rank{rank}.jsonl").open("a") as lines:
            lines.write(json.dumps({"step": step, "pid": os.getpid(), "rows": self.forwards}) + "\n")
        self.forwards = []
        if step == TOTAL_STEPS and rank == 0:
            torch.save({k: v.detach().clone() for k, v in engine.module.state_dict().items()}, out / "weights.pt")
        marker = out / f"killed-at-{step}"
        if rank == self.kill_rank and step in self.kills and not marker.exists():
            marker.touch()
            if self.kills[step] is not None:
                damaged = out / "ray" / self.kills[step]
                damaged.write_bytes(damaged.read_bytes()[:100])
            os._exit(1)


def _recording_loop(loop_config: dict[str, Any]) -> None:
    recorder = loop_config["inputs"].after_step
    handle = torch.nn.modules.module.register_module_forward_pre_hook(recorder.record)
    try:
        train_loop_per_worker(loop_config)
    finally:
        handle.remove()


def _trial(tiny_model, tracking_uri: str, out: Path, name: str, recorder: _Recorder, max_failures: int) -> str:
    """Fit one trial; its MLflow run id."""
    out.mkdir(parents=True)
    run = start_sweep_run(tracking_uri, "faults", name, {})
    arranged, test = _tables()
    train = TrainConfig(
        global_batch_size=8, micro_batch_size=2, zero_stage=2, lr=3e-3, eval_every=2, epochs=2, max_length=64
    )
    inputs = WorkerInputs(
        tiny_model,
        train,
        arranged,
        test,
        run=run,
        seed=5,
        checkpoints=ResumeConfig(resume_every=4, num_to_keep=2, max_failures=max_failures, eval_every=8),
        eval_root=str(out / "eval"),
        after_step=recorder,
    )
    TorchTrainer(
        _recording_loop,
        train_loop_config={"inputs": inputs},
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(
            name="trial",
            storage_path=str(out / "ray"),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            failure_config=FailureConfig(max_failures=max_failures),
        ),
    ).fit()
    return run.run_id


@dataclass(frozen=True)
class _Observed:
    out: Path
    run_id: str
    tracking_uri: str

    def lines(self, rank: int) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.out / f"rank{rank}.jsonl").read_text().splitlines()]

    def effective(self) -> dict[int, list[Any]]:
        """step → every rank's token rows of that step, from the last process that trained it."""
        steps: dict[int, list[Any]] = {}
        for rank in (0, 1):
            per_step = {line["step"]: line["rows"] for line in self.lines(rank)}  # later lines win
            for step, rows in per_step.items():
                steps.setdefault(step, []).append(rows)
        return steps

    def history(self) -> dict[str, list[tuple[int, float]]]:
        client = MlflowClient(self.tracking_uri)
        keys = client.get_run(self.run_id).data.metrics
        return {key: [(m.step, m.value) for m in client.get_metric_history(self.run_id, key)] for key in keys}


@pytest.fixture(scope="module")
def trials(ray_cluster, tiny_model, tmp_path_factory) -> dict[str, _Observed]:
    root = tmp_path_factory.mktemp("faults")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    damaged = "trial/step-00000008.g1/rank-1.pt"  # after step 11 Ray keeps step 4's and the first restart's 8
    cases = {
        "clean": _Recorder(str(root / "clean")),
        "killed": _Recorder(str(root / "killed"), kill_rank=1, kills={5: None, 11: damaged}),
    }
    observed = {}
    for name, recorder in cases.items():
        run_id = _trial(tiny_model, tracking_uri, Path(recorder.out), name, recorder, max_failures=2)
        observed[name] = _Observed(Path(recorder.out), run_id, tracking_uri)
    return observed


def test_a_killed_worker_resumes_from_its_checkpoint(trials):
    lines = trials["killed"].lines(1)
    pids = list(dict.fromkeys(line["pid"] for line in lines))
    assert len(pids) == 3, "rank 1 ran in exactly three processes: two killed, the last one finishing"
    steps = [[line["step"] for line in lines if line["pid"] == pid] for pid in pids]
    assert steps[0] == list(range(1, 6))  # it trained one step past the checkpoint of step 4, then died
    assert steps[1] == list(range(5, 12))  # continued at step 5; past its own checkpoint of step 8, then died
    assert steps[2] == list(range(5, TOTAL_STEPS + 1))  # step 8's checkpoint was damaged: from step 4 again


def test_the_order_trained_equals_an_uninterrupted_run(trials):
    clean, faulted = trials["clean"].effective(), trials["killed"].effective()
    assert sorted(clean) == list(range(1, TOTAL_STEPS + 1))
    assert faulted == clean
    assert all(rows for step in clean.values() for rows in step)  # every step of every rank trained on items


def test_the_final_weights_are_bit_identical(trials):
    clean = torch.load(trials["clean"].out / "weights.pt")
    faulted = torch.load(trials["killed"].out / "weights.pt")
    assert clean.keys() == faulted.keys()
    assert all(torch.equal(clean[key], faulted[key]) for key in clean)


def test_every_metric_has_each_step_exactly_once(trials):
    clean, faulted = trials["clean"].history(), trials["killed"].history()
    assert set(faulted) - set(clean) == RESUME_ONLY
    for key, points in faulted.items():
        steps = [step for step, _ in points]
        assert len(steps) == len(set(steps)), (key, sorted(steps))
        if key in clean:
            assert sorted(steps) == sorted(step for step, _ in clean[key]), key
    for key in ("train_loss", "test_loss/macro", "lr"):
        assert sorted(faulted[key]) == sorted(clean[key]), key  # the same numbers, step by step


def test_a_damaged_checkpoint_is_skipped_and_named(trials):
    tags = MlflowClient(trials["killed"].tracking_uri).get_run(trials["killed"].run_id).data.tags
    assert tags["resumed_from"].endswith("step-00000004")
    skipped = tags["skipped_checkpoints"]
    assert "step-00000008.g1" in skipped and "rank-1.pt" in skipped and "100 bytes" in skipped, skipped
    # Steps saved again after the fallback went to folders of their own: none is tracked twice by Ray.
    kept = sorted(path.name for path in (trials["killed"].out / "ray" / "trial").glob("step-*"))
    assert kept == ["step-00000008.g2", "step-00000012.g2"]


def test_eval_checkpoints_hold_the_trained_weights_in_bf16_and_are_tagged(trials, tiny_model):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    clean = trials["clean"]
    folders = sorted(path.name for path in (clean.out / "eval").iterdir())
    assert folders == ["step-00000008", "step-00000016"]
    final = clean.out / "eval" / "step-00000016"
    weights = torch.load(clean.out / "weights.pt")
    saved = load_file(str(final / "model.safetensors"))
    assert saved.keys() == weights.keys()
    assert all(saved[k].dtype == torch.bfloat16 and torch.equal(saved[k], weights[k].bfloat16()) for k in saved)
    loaded = AutoModelForCausalLM.from_pretrained(final)  # a plain Hugging Face folder: config, weights, tokenizer
    assert torch.equal(loaded.state_dict()["lm_head.weight"].bfloat16(), saved["lm_head.weight"])
    assert (final / "tokenizer_config.json").is_file()
    tags = MlflowClient(clean.tracking_uri).get_run(clean.run_id).data.tags
    assert tags["eval_checkpoint/step-00000016"] == str(final)
    assert tags["eval_checkpoint/step-00000008"] == str(clean.out / "eval" / "step-00000008")
    # The faulted trial wrote the same final weights (its step-8 one twice: by the restarts that trained it).
    killed = load_file(str(trials["killed"].out / "eval" / "step-00000016" / "model.safetensors"))
    assert killed.keys() == saved.keys() and all(torch.equal(killed[k], saved[k]) for k in saved)
