"""Every study config's offline variant (`--offline`: the same experiment on built-in data and tiny models) runs
end to end on a reduced grid — real Ray Tune → Ray Train → DeepSpeed trials, a real MLflow store — and produces
the figures its factors allow, read back from MLflow.

The reduction keeps each experiment's factors (its permutations, recipes, model sizes, metrics) and cuts only
what CI cannot pay for: one seed, two grid points where the experiment allows, a few examples per task, one
worker per trial. All variants share one workdir, so the built-in data and its embeddings are made once.

Run: `python -m pytest -q tests/integration/test_offline_variants.py`
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from dynamics.config import SweepConfig, load_config
from dynamics.sweep.driver import run_sweep
from dynamics.tracking import TrackedRun, child_runs

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"
STUDIES = sorted(CONFIGS.glob("study_*.yaml"))

SMALL_DATA = {"data.options.per_train_task": 3, "data.options.per_test_task": 3}  # 108 train, 33 test items
CHEAP = {"grid.seed": [0], "scaling.num_workers": 1, "checkpoints.resume_every": None}
GENERATION = ("test_rouge1_vs_step", "test_rouge_l_vs_step", "test_exact_match_vs_step", "test_reward_vs_step")
STUDY_A = ("ability_vs_volume", "growth_pace_by_ability")
# Per experiment, the grid CI runs — the experiment's own factor kept (two levels where its figure compares them) —
# and the figures it must draw beside test loss vs step.
REDUCED: dict[str, tuple[dict, tuple[str, ...]]] = {
    "study_a_doit_volume": ({"grid.volume": [10, 40], "grid.model": ["tiny-2m"]}, STUDY_A),
    "study_a_doit_curated_vs_synthetic": (
        {"grid.recipe": ["curated", "synthetic-40"], "grid.volume": [10, 40], "data.options.synthetic": 60},
        STUDY_A,
    ),
    "study_a_doit_construction": (  # the same synthetic pool as above: its embeddings are reused
        {"grid.recipe": ["maximum", "mix"], "grid.volume": [20], "data.options.synthetic": 60},
        ("test_loss_per_task",),
    ),
    "study_a_doit_ood": ({"grid.volume": [10, 40]}, STUDY_A),
    # The three positioning variants are one offline experiment (built-in data stands in for NIV2, P3, Flan-mini).
    "study_b_niv2_positioning": ({"grid.volume": [48]}, GENERATION),
    "study_b_p3_positioning": ({"grid.volume": [48]}, GENERATION),
    "study_b_flan_mini_positioning": ({"grid.volume": [48]}, GENERATION),
    "study_b_flan_mini_permutations": ({"grid.volume": [48], "grid.permutation": ["cluster"]}, ("test_loss_per_task",)),
    "study_b_niv2_similarity": ({"grid.volume": [48], "grid.permutation": ["nft", "fft"]}, GENERATION),
    "study_b_niv2_granularity": ({"grid.volume": [48], "grid.permutation": ["coarse_nft"]}, ()),
    # So are the three TMA-with-three-settings variants (Flan-mini, ShareGPT, No Robots).
    "study_b_tma3_flan_mini": ({"grid.volume": [48], "grid.permutation": ["tma_min"]}, ()),
    "study_b_tma3_sharegpt": ({"grid.volume": [48], "grid.permutation": ["tma_min"]}, ()),
    "study_b_tma3_norobots": ({"grid.volume": [48], "grid.permutation": ["tma_min"]}, ()),
    "study_b_tma5_flan_mini": ({"grid.volume": [48], "grid.permutation": ["tma_max_min"]}, ()),
    "study_b_tma_rounds": (
        {"grid.volume": ["all"], "grid.permutation": ["tma_min[0:2]", "tma_min[2:4]"]},
        ("rounds_ablation",),
    ),
}
SAME_EVERYWHERE = {"name", "workdir", "tracking"}  # what differs between variants that run the same experiment


def _reduced(path: Path, workdir: Path) -> SweepConfig:
    overrides, _ = REDUCED[path.stem]
    return load_config(path, {"workdir": str(workdir)} | SMALL_DATA | CHEAP | overrides, offline=True)


def _distinct_variants() -> list[list[Path]]:
    """The study configs grouped by what their reduced offline variant runs: each group runs once."""
    groups: dict[str, list[Path]] = {}
    for path in STUDIES:
        if path.stem not in REDUCED:
            continue
        config = _reduced(path, Path("unused")).model_dump(mode="json", exclude=SAME_EVERYWHERE)
        groups.setdefault(json.dumps(config, sort_keys=True), []).append(path)
    return list(groups.values())


def test_every_study_config_has_a_reduced_grid() -> None:
    assert {path.stem for path in STUDIES} == set(REDUCED)
    assert len(_distinct_variants()) == len(STUDIES) - 4  # positioning: 3 → 1, TMA three settings: 3 → 1


@pytest.fixture(scope="module")
def shared_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("offline_variants")


@pytest.mark.usefixtures("ray_cluster")
@pytest.mark.parametrize("group", _distinct_variants(), ids=lambda group: "+".join(p.stem for p in group))
def test_an_offline_variant_runs_and_draws_its_figures(group: list[Path], shared_workdir: Path) -> None:
    path = group[0]
    config = _reduced(path, shared_workdir)
    result = run_sweep(config, origin=f"{path} --offline")
    assert result.failed_trials == 0, result.failures
    expected_trials = len(config.grid.raw_points())
    assert result.num_trials == expected_trials
    parent = TrackedRun(result.tracking_uri, result.parent_run_id)
    runs = child_runs(parent)
    assert len(runs) == expected_trials and all(run.info.status == "FINISHED" for run in runs)
    figures = result.summary["figures"]
    wanted = {"test_loss_vs_step", *(name for p in group for name in REDUCED[p.stem][1])}
    assert wanted <= set(figures), f"missing figures: {sorted(wanted - set(figures))}"
    client = MlflowClient(result.tracking_uri)
    logged = {artifact.path for artifact in client.list_artifacts(parent.run_id)}
    for name, png in figures.items():
        assert Path(png).stat().st_size > 10_000, name  # a drawn figure, not an empty canvas
        assert Path(png).name in logged, f"{name} is not logged to the parent run"
    # The headline figure's lines are the trials' MLflow histories (one seed: the mean is the run's own value).
    numbers = json.loads(Path(figures["test_loss_vs_step"]).with_suffix(".json").read_text())
    histories = [
        sorted(client.get_metric_history(run.info.run_id, "test_loss/macro"), key=lambda m: m.step) for run in runs
    ]
    drawn = sorted((series["x"], series["y"]) for series in numbers["series"] if "y" in series)
    logged_curves = sorted(([float(m.step) for m in h], [m.value for m in h]) for h in histories)
    assert len(drawn) == len(logged_curves)
    for (x, y), (steps, values) in zip(drawn, logged_curves, strict=True):
        assert x == steps and y == pytest.approx(values)
