"""`sweep --dry-run`: the trial table and a GPU-hours estimate, with nothing started. The estimate is checked
against a hand computation, parameter counts against the models as they are built, and the real command against
the study configs (no Ray, well under 30 s)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dynamics.config import BuiltinModelConfig, ModelConfig, SweepConfig, load_config
from dynamics.models import materialise
from dynamics.sweep.dry_run import Count, DataFacts, dry_run, estimate, parameter_count

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "experiments" / "configs"
SIZES = BuiltinModelConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4)


def test_a_builtin_model_and_a_local_folder_are_counted_as_built(tmp_path: Path) -> None:
    source = materialise("tiny", ModelConfig(builtin=SIZES), tmp_path)
    from transformers import AutoModelForCausalLM

    built = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(source.model).parameters())
    assert parameter_count("tiny", ModelConfig(builtin=SIZES)).value == built
    counted = parameter_count("tiny", ModelConfig(pretrained=source.model))
    assert counted.value == built and "config.json" in counted.origin


@pytest.mark.parametrize(
    ("name", "expected"),
    [("meta-llama/Llama-2-7b-hf", 7e9), ("huggyllama/llama-30b", 30e9), ("Qwen/Qwen2.5-0.5B", 0.5e9), ("gpt2", None)],
)
def test_a_hub_model_not_on_this_machine_is_sized_from_its_name(name: str, expected: float | None) -> None:
    count = parameter_count("m", ModelConfig(pretrained=name))
    assert count.value == expected
    assert ("assumed from the name" if expected else "unknown") in count.origin


def test_the_estimate_is_six_n_tokens_plus_two_n_evaluated_over_mfu_and_peak() -> None:
    config = SweepConfig(
        models={"tiny": ModelConfig(builtin=SIZES)},
        train={"global_batch_size": 16, "micro_batch_size": 8, "eval_every": 10, "precision": "bf16", "epochs": 2},
        evaluate={"in_loop": [{"metrics": ["rouge_l"], "every": 20, "subset": 30}], "max_new_tokens": 8},
        scaling={"num_workers": 2, "use_gpu": True, "gpus_per_worker": 1},
        grid={"volume": [100, "all"], "model": ["tiny"], "permutation": ["random"], "seed": [0]},
    )
    facts = DataFacts(
        Count(400, "given"), Count(50, "given"), {"tiny": Count(120.0, "given")}, {"tiny": Count(80.0, "given")}
    )
    trials, basis = estimate(config, facts, mfu=0.5, device="A100")
    n = parameter_count("tiny", config.models["tiny"]).value
    assert basis["peaks"]["tiny"] == 312e12  # A100 bf16
    small, whole = trials
    # volume 100, 2 epochs, batch 16: 6 full steps and a smaller one per epoch = 14; loss at 0, 10, 14;
    # generation at 0, 14
    assert (small.name, small.steps, small.train_tokens) == ("n=100 model=tiny perm=random seed=0", 14, 100 * 2 * 120.0)
    evaluated = 3 * 50 * 80.0 + 2 * 30 * (80.0 + 8)
    assert small.flops == pytest.approx(6 * n * 24_000 + 2 * n * evaluated)
    assert small.gpu_hours == pytest.approx(small.flops / (0.5 * 312e12) / 3600)
    assert (whole.volume, whole.steps) == (400, 50)  # 'all' is the pool
    dropped = estimate(
        config.model_copy(update={"train": config.train.model_copy(update={"last_step": "drop"})}),
        facts,
        mfu=0.5,
        device="A100",
    )[0][0]
    assert (dropped.steps, dropped.train_tokens) == (12, 96 * 2 * 120.0)  # the 4-item tail of each epoch left out


def test_a_study_config_whose_data_is_elsewhere_still_gets_its_table(tmp_path: Path) -> None:
    config = load_config(
        CONFIGS / "study_b_niv2_similarity.yaml", {"data.path": str(tmp_path / "absent"), "grid.seed": [0]}
    )
    text = dry_run(config, assume_pool=15_000)
    assert "n=15000 model=llama2-7b perm=nft seed=0" in text and "8 workers × {CPU 8, GPU 1}" in text
    assert "data not read on this machine" in text and "15.0k training examples, --assume-pool" in text
    unknown = dry_run(config)
    assert "n=all model=llama2-7b perm=nft seed=0" in unknown and "3 trials unknown" in unknown


def test_the_offline_study_is_measured_on_its_data() -> None:
    text = dry_run(load_config(CONFIGS / "offline.yaml"))
    assert "12 trials" in text and "measured on 1,440 training rows of data source 'builtin'" in text


def test_mfu_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="--mfu 40"):
        dry_run(load_config(CONFIGS / "offline.yaml"), mfu=40)


# The command as `experiments/sweep.py` runs it, then whether this fresh process started or joined Ray.
RUN_EACH_AND_SAY_IF_RAY = """
import sys, time
started = time.perf_counter()
import ray
from dynamics.cli import main
print("startup_s", time.perf_counter() - started, flush=True)
for config in sys.argv[1:]:
    began = time.perf_counter()
    code = main(["sweep", "--config", config, "--dry-run"])
    print("config", config, "exit", code, "took_s", time.perf_counter() - began, flush=True)
print("ray initialized:", ray.is_initialized())
"""


def test_the_command_prints_every_study_table_in_under_30_s_with_no_ray(tmp_path: Path) -> None:
    """Each config's dry run, timed in one process: its Python start-up and imports (the first run's lazy ones
    too) are timed once and added to every config's own time, a bound on what each command takes alone; no Ray
    is started and nothing written."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "RAY_ADDRESS": ""}
    configs = sorted(CONFIGS.glob("study_*.yaml"))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUN_EACH_AND_SAY_IF_RAY, *map(str, configs)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    startup = next(float(line.split()[1]) for line in lines if line.startswith("startup_s"))
    startup += (
        time.perf_counter()
        - started
        - sum(  # the interpreter's own start, before the first import
            float(line.split()[-1]) for line in lines if line.startswith(("startup_s", "config "))
        )
    )
    timed = {line.split()[1]: (line.split()[3], float(line.split()[5])) for line in lines if line.startswith("config ")}
    assert set(timed) == set(map(str, configs))
    lazy_imports = timed[str(configs[0])][1]  # the first dry run also pays torch's and transformers' imports
    for config, (code, took) in timed.items():
        assert code == "0", config
        assert startup + lazy_imports + took < 30, (config, startup, lazy_imports, took)  # an upper bound
    assert done.stdout.count("GPU-hours") >= len(configs) and done.stdout.count("nothing started") == len(configs)
    assert "ray initialized: False" in done.stdout
    assert not (tmp_path / "runs").exists()  # nothing written: no workdir, no cache, no store


def test_a_recipe_trial_is_estimated_on_the_examples_its_recipe_takes(tmp_path: Path) -> None:
    """mix-N trains on maximum plus N examples, not on N: measured on the loaded data, unknown without it."""
    path = CONFIGS / "study_a_doit_construction.yaml"
    offline = load_config(path, {"workdir": str(tmp_path / "work"), "grid.volume": [160]}, offline=True)
    text = dry_run(offline)
    maximum = int(re.search(r"recipe maximum: (\d+) training examples, measured", text).group(1))
    assert f"recipe mix-160: {maximum + 160} training examples, measured" in text
    assert f"maximum n={maximum} model=tiny-2m perm=rt seed=0" in text
    away = load_config(path, {"data.path": str(tmp_path / "absent"), "grid.seed": [0]})
    text = dry_run(away)
    assert "recipe baseline: 10.0k training examples, assumed: the recipe's budget" in text
    assert "recipe mix-2560: ? training examples, unknown: needs the pools' sizes" in text
    assert re.search(r"mix-2560 model=llama-7b perm=rt seed=0 .* \?\s+\?\s+\?$", text, re.MULTILINE)
