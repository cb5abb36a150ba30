"""Every figure of the report against the MLflow store it is read from. Two real SQLite stores hold small sweeps:
a Study B one (WSD, task-level and TMA rounds-window permutations; loss per task, ROUGE-L and exact match; one
failed seed) and a Study A one (curated and synthetic recipes over volumes, a fixed recipe, two models, per-ability
scores with chance levels, some trials with a checkpoint selected on valid). The numbers each figure draws, and the
growth-pace table, are recomputed here from `get_metric_history` with numpy/scipy, never from the report's output.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from mlflow.entities import Run
from scipy import stats

from dynamics.config import TrialFactors
from dynamics.report import FIGURES, SweepHistory, fit_growth, report_lines, report_sweep
from dynamics.report.curves import cell_of
from dynamics.tracking import PARENT_TAG, TrackedRun, start_sweep_run, start_trial_run

STEPS = [0, 2, 4, 6, 8]
GENERATION_STEPS = [0, 4, 8]  # generation metrics every k steps, step 0 included
TASKS = ["task_a", "task_b", "task_c"]
WINDOWS = ["tma_min[0:5]", "tma_min[5:10]", "tma_min[10:15]", "tma_max[0:5]", "tma_max[5:10]"]
STUDY_B_PERMUTATIONS = ["nft", "fft", "rt", "round_robin", "cluster", *WINDOWS]
SEEDS = [0, 1, 2]
VOLUMES = [10, 40, 160, 640, 2560]
CHANCE = {"ethics": 33.3, "math": 0.0, "overall": 16.65}
# (model, recipe, ability) → (plateau, ln v50, width in ln volume): the curves Study A's scores are drawn from
TRUTH = {
    ("tiny-2m", "curated", "ethics"): (90.0, math.log(20), 0.5),
    ("tiny-2m", "curated", "math"): (70.0, math.log(300), 0.7),
    ("tiny-2m", "synthetic", "math"): (40.0, math.log(100), 0.4),
    ("tiny-0.5m", "curated", "ethics"): (80.0, math.log(40), 0.6),
}
RISING = ("tiny-0.5m", "curated", "math")  # half-way only at 20000 examples: still rising at 2560, no plateau seen
TRUTH[RISING] = (50.0, math.log(20000), 1.0)
FLAT = ("tiny-2m", "synthetic", "ethics")  # 0.3 points above chance at every volume: no pace to report


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% interval the textbook way (numpy + scipy), independent of the code under test."""
    array = np.asarray(values, dtype=float)
    if len(array) == 1:
        return float(array[0]), float(array[0]), float(array[0])
    half = stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / math.sqrt(len(array))
    return float(array.mean()), float(array.mean() - half), float(array.mean() + half)


def finished_runs(sweep: TrackedRun) -> list[Run]:
    experiment = sweep.client.get_run(sweep.run_id).info.experiment_id
    runs = sweep.client.search_runs([experiment], f"tags.`{PARENT_TAG}` = '{sweep.run_id}'", max_results=1000)
    return [run for run in runs if run.info.status == "FINISHED"]


def points(sweep: TrackedRun, run: Run, key: str) -> dict[int, float]:
    return {m.step: m.value for m in sweep.client.get_metric_history(run.info.run_id, key)}


def series(drawn: list[dict], panel: str, label: str) -> dict:
    found = [s for s in drawn if s["panel"] == panel and s["label"] == label]
    assert len(found) == 1, (
        f"{panel!r} / {label!r}: {len(found)} series among {[(s['panel'], s['label']) for s in drawn]}"
    )
    return found[0]


def assert_mean_and_band(drawn: list[dict], panel: str, name: str, xs: list, per_x: list[list[float]]) -> None:
    """The line `name (mean of n seeds)` and its band on `panel` are the t-means and intervals of `per_x`."""
    n = {len(values) for values in per_x}
    label = name if n == {1} else f"{name} (mean of {n.pop()} seeds)"
    line, band = series(drawn, panel, label), series(drawn, panel, f"95% interval: {label}")
    assert line["x"] == pytest.approx(xs) and band["x"] == pytest.approx(xs)
    for i, values in enumerate(per_x):
        mean, low, high = t_interval(values)
        assert line["y"][i] == pytest.approx(mean)
        assert (band["low"][i], band["high"][i]) == pytest.approx((low, high))


def drawn_of(out: Path, name: str) -> list[dict]:
    return json.loads((out / f"{name}.json").read_text())["series"]


# ---------------------------------------------------------------- Study B


@pytest.fixture(scope="module")
def study_b(tmp_path_factory: pytest.TempPathFactory) -> TrackedRun:
    uri = f"sqlite:///{tmp_path_factory.mktemp('study_b') / 'mlflow.db'}"
    parent = start_sweep_run(uri, "figures-b", "study-b", {})
    rng = np.random.default_rng(11)
    for p, permutation in enumerate(STUDY_B_PERMUTATIONS):
        for seed in SEEDS:
            factors = {"volume": 160, "model": "tiny-2m", "permutation": permutation, "seed": seed}
            trial = start_trial_run(parent, f"n=160 model=tiny-2m perm={permutation} seed={seed}", factors)
            buffer = trial.metric_buffer()
            for step in STEPS:
                tasks = {
                    f"test_loss/task/{task}": 3.0 + 0.1 * p + 0.2 * t - 0.15 * step + rng.normal(0, 0.05)
                    for t, task in enumerate(TASKS)
                }
                buffer.add(tasks | {"test_loss/macro": float(np.mean(list(tasks.values())))}, step)
            for step in GENERATION_STEPS:
                rouge = 10 + 2 * step - p + rng.normal(0, 1)
                buffer.add({"test_rouge_l/macro": rouge, "test_exact_match/macro": rouge / 3}, step)
            buffer.flush()
            if permutation == "cluster" and seed == 2:
                trial.fail("a dead worker")  # its curves must not enter any mean
            else:
                trial.finish()
    return parent


@pytest.fixture(scope="module")
def study_b_report(study_b: TrackedRun, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("study_b_report")
    return report_sweep(study_b, out), out


def test_study_b_draws_the_figures_its_factors_allow(study_b: TrackedRun, study_b_report: tuple[dict, Path]) -> None:
    summary, out = study_b_report
    expected = {
        "test_loss_vs_step",
        "test_rouge_l_vs_step",
        "test_exact_match_vs_step",
        "test_loss_per_task",
        "rounds_ablation",
    }
    assert set(summary["figures"]) == expected  # no ROUGE-1, reward, ability or growth-pace figure: not logged
    assert "growth_pace" not in summary and not (out / "growth_pace.json").exists()
    assert summary["figure"] == summary["figures"]["test_loss_vs_step"]
    for path in summary["figures"].values():
        assert Path(path).stat().st_size > 10_000  # a real PNG
    logged = {artifact.path for artifact in study_b.client.list_artifacts(study_b.run_id)}
    assert {f"{name}.png" for name in expected} | {f"{name}.json" for name in expected} <= logged
    assert [line for line in report_lines(summary) if line.startswith("figure ")] == [
        f"figure {name}: {path}" for name, path in summary["figures"].items()
    ]


def test_generation_metric_curves_are_the_store_means(study_b: TrackedRun, study_b_report: tuple[dict, Path]) -> None:
    _, out = study_b_report
    runs = finished_runs(study_b)
    for metric in ("test_rouge_l/macro", "test_exact_match/macro"):
        drawn = drawn_of(out, f"{metric.split('/')[0]}_vs_step")
        for permutation in STUDY_B_PERMUTATIONS:
            mine = [points(study_b, r, metric) for r in runs if r.data.params["permutation"] == permutation]
            per_step = [[h[step] for h in mine] for step in GENERATION_STEPS]
            assert_mean_and_band(drawn, "tiny-2m, 160 examples", permutation, GENERATION_STEPS, per_step)


def test_per_task_curves_are_the_store_means_per_permutation(
    study_b: TrackedRun, study_b_report: tuple[dict, Path]
) -> None:
    _, out = study_b_report
    drawn = drawn_of(out, "test_loss_per_task")
    runs = finished_runs(study_b)
    assert {s["panel"] for s in drawn} == {f"tiny-2m, 160 examples, {p}" for p in STUDY_B_PERMUTATIONS}
    for permutation in ("round_robin", "cluster", "rt"):  # cluster lost a seed: 2 seeds there
        for task in TASKS:
            mine = [
                points(study_b, r, f"test_loss/task/{task}")
                for r in runs
                if r.data.params["permutation"] == permutation
            ]
            per_step = [[h[step] for h in mine] for step in STEPS]
            assert_mean_and_band(drawn, f"tiny-2m, 160 examples, {permutation}", task, STEPS, per_step)


def test_rounds_ablation_is_the_store_loss_by_window_start(
    study_b: TrackedRun, study_b_report: tuple[dict, Path]
) -> None:
    _, out = study_b_report
    drawn = drawn_of(out, "rounds_ablation")
    runs = finished_runs(study_b)
    loss = {
        (r.data.params["permutation"], int(r.data.params["seed"])): points(study_b, r, "test_loss/macro") for r in runs
    }
    for base, starts in (("tma_min", [0, 5, 10]), ("tma_max", [0, 5])):
        finals = [[loss[(f"{base}[{i}:{i + 5}]", s)][max(STEPS)] for s in SEEDS] for i in starts]
        means = [[float(np.mean(list(loss[(f"{base}[{i}:{i + 5}]", s)].values()))) for s in SEEDS] for i in starts]
        assert_mean_and_band(drawn, "tiny-2m, 160 examples: final step", f"{base}, 5 rounds", starts, finals)
        assert_mean_and_band(drawn, "tiny-2m, 160 examples: mean over steps", f"{base}, 5 rounds", starts, means)
        for i in starts:
            per_step = [[loss[(f"{base}[{i}:{i + 5}]", s)][step] for s in SEEDS] for step in STEPS]
            panel = f"tiny-2m, 160 examples: {base} rounds [i, i+5)"
            assert_mean_and_band(drawn, panel, f"[{i}, {i + 5})", STEPS, per_step)
    assert not any("nft" in s["label"] for s in drawn)  # whole orders are not windows


# ---------------------------------------------------------------- Study A


def score_of(model: str, recipe: str, ability: str, volume: int, shift: float, noise: float) -> float:
    if (model, recipe, ability) == FLAT:
        return CHANCE[ability] + 0.3
    plateau, midpoint, width = TRUTH[(model, recipe, ability)]
    rise = (plateau - CHANCE[ability]) / (1 + math.exp(-(math.log(volume) - midpoint - shift) / width))
    return CHANCE[ability] + rise + noise


def study_a_trials() -> list[dict]:
    trials = [
        {"recipe": recipe, "volume": volume, "model": model, "permutation": "rt", "seed": seed}
        for model, recipes in (("tiny-0.5m", ["curated"]), ("tiny-2m", ["curated", "synthetic"]))
        for recipe in recipes
        for volume in VOLUMES
        for seed in SEEDS
    ]
    return trials + [
        {"recipe": "baseline", "volume": 10000, "model": "tiny-2m", "permutation": "rt", "seed": s} for s in SEEDS
    ]


@pytest.fixture(scope="module")
def study_a(tmp_path_factory: pytest.TempPathFactory) -> TrackedRun:
    uri = f"sqlite:///{tmp_path_factory.mktemp('study_a') / 'mlflow.db'}"
    parent = start_sweep_run(uri, "figures-a", "study-a", {})
    rng = np.random.default_rng(5)
    shifts = {(model, recipe, seed): rng.normal(0, 0.12) for model, recipe, _ in TRUTH for seed in SEEDS}
    for factors in study_a_trials():
        model, recipe, volume, seed = factors["model"], factors["recipe"], factors["volume"], factors["seed"]
        name = f"{TrialFactors(**factors).recipe_name} model={model} perm=rt seed={seed}"
        trial = start_trial_run(parent, name, factors)
        buffer = trial.metric_buffer()
        family = "curated" if recipe == "baseline" else recipe
        result = {
            ability: score_of(model, family, ability, volume, shifts[(model, family, seed)], rng.normal(0, 0.4))
            for ability in ("ethics", "math")
        }
        result["overall"] = (result["ethics"] + result["math"]) / 2
        for step in (0, 5, 10):  # the result at the last step, unless a checkpoint is selected (seed 1)
            late = step == 10 if seed != 1 else step == 5
            scores = {a: (v if late else v - 7.0 + step) for a, v in result.items()}
            buffer.add({f"test_ability/{a}": v for a, v in scores.items()}, step)
            buffer.add({f"test_ability_chance/{a}": c for a, c in CHANCE.items()}, step)
            loss = (2.0 if family == "curated" else 3.0) + 0.5 / math.log(volume) - 0.05 * step
            buffer.add({"test_loss/macro": loss + rng.normal(0, 0.02)}, step)
        if seed == 1:
            buffer.add({"selected/step": 5.0} | {f"selected/test_ability/{a}": v for a, v in result.items()}, 10)
        buffer.flush()
        trial.finish()
    return parent


@pytest.fixture(scope="module")
def study_a_report(study_a: TrackedRun, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("study_a_report")
    return report_sweep(study_a, out), out


def trial_result(sweep: TrackedRun, run: Run, ability: str) -> float:
    """A trial's score as Study A reports it: at the selected checkpoint when there is one, else the last step."""
    selected = points(sweep, run, f"selected/test_ability/{ability}")
    if selected:
        return selected[max(selected)]
    history = points(sweep, run, f"test_ability/{ability}")
    return history[max(history)]


def results_by_cell(sweep: TrackedRun, ability: str) -> dict[tuple[str, str, int], dict[int, float]]:
    found: dict[tuple[str, str, int], dict[int, float]] = {}
    for run in finished_runs(sweep):
        p = run.data.params
        found.setdefault((p["model"], p["recipe"], int(p["volume"])), {})[int(p["seed"])] = trial_result(
            sweep, run, ability
        )
    return found


def test_study_a_draws_ability_figures_and_not_study_b_ones(study_a_report: tuple[dict, Path]) -> None:
    summary, out = study_a_report
    assert set(summary["figures"]) == {"test_loss_vs_step", "ability_vs_volume", "growth_pace_by_ability"}
    assert summary["growth_pace"] == json.loads((out / "growth_pace.json").read_text())["growth_pace"]
    assert any(line.startswith("growth pace") for line in report_lines(summary))


def test_score_vs_volume_is_the_store_results_per_ability(
    study_a: TrackedRun, study_a_report: tuple[dict, Path]
) -> None:
    _, out = study_a_report
    drawn = drawn_of(out, "ability_vs_volume")
    assert {s["panel"] for s in drawn} == {"ethics", "math", "overall"}
    for ability in ("ethics", "math", "overall"):
        found = results_by_cell(study_a, ability)
        for model, recipe in (("tiny-2m", "curated"), ("tiny-2m", "synthetic"), ("tiny-0.5m", "curated")):
            per_volume = [[found[(model, recipe, v)][s] for s in SEEDS] for v in VOLUMES]
            assert_mean_and_band(drawn, ability, f"{model} {recipe}", VOLUMES, per_volume)
        # the fixed recipe: one marker at its own size, with its interval as a whisker
        assert_mean_and_band(
            drawn, ability, "tiny-2m baseline", [10000], [[found[("tiny-2m", "baseline", 10000)][s] for s in SEEDS]]
        )
        chance = series(drawn, ability, "chance")
        assert chance["x"] == [10, 10000] and chance["y"] == pytest.approx([CHANCE[ability]] * 2)


def test_score_vs_volume_is_on_a_log_4_axis(study_a: TrackedRun) -> None:
    figure = FIGURES.get("ability_vs_volume").draw(SweepHistory.read(study_a))
    axis = figure.axes[0]
    assert axis.get_xscale() == "log"
    assert [t.get_text() for t in axis.get_xticklabels()] == ["10", "40", "160", "640", "2.5k", "10k"]
    styles = {line.get_label(): line.get_linestyle() for line in axis.get_lines()}
    assert styles["tiny-2m curated (mean of 3 seeds)"] == "-" and styles["tiny-2m synthetic (mean of 3 seeds)"] == "--"
    assert styles["chance"] == ":" and styles["tiny-2m baseline (mean of 3 seeds)"] == "None"  # a marker, no line


def test_recipes_are_separate_cells(study_a: TrackedRun, study_a_report: tuple[dict, Path]) -> None:
    summary, out = study_a_report
    drawn = drawn_of(out, "test_loss_vs_step")
    runs = finished_runs(study_a)
    for recipe in ("curated", "synthetic"):
        mine = [
            points(study_a, r, "test_loss/macro")
            for r in runs
            if (r.data.params["recipe"], r.data.params["volume"], r.data.params["model"]) == (recipe, "160", "tiny-2m")
        ]
        assert len(mine) == 3
        assert_mean_and_band(
            drawn, f"tiny-2m, {recipe}-160", "rt", [0, 5, 10], [[h[s] for h in mine] for s in (0, 5, 10)]
        )
    assert series(drawn, "tiny-2m, baseline (10000 examples)", "rt (mean of 3 seeds)")["x"] == [0, 5, 10]
    rows = [r for r in summary["early_phase"] if (r["model"], r["volume"]) == ("tiny-2m", 160)]
    assert sorted(r["recipe"] for r in rows) == ["curated", "synthetic"] and all(r["seeds"] == 3 for r in rows)
    curated = TrialFactors(recipe="curated", volume=160, model="m", permutation="rt", seed=0)
    assert cell_of(curated) != cell_of(curated.model_copy(update={"recipe": "synthetic"}))
    assert cell_of(curated) == cell_of(curated.model_copy(update={"seed": 4}))


def test_growth_pace_recovers_the_known_curves(study_a_report: tuple[dict, Path]) -> None:
    summary, _ = study_a_report
    rows = {(r["model"], r["recipe"], r["ability"]): r for r in summary["growth_pace"]}
    assert ("tiny-2m", "baseline", "math") not in rows  # a fixed recipe is one point, not a curve
    for key, (_, midpoint, width) in TRUTH.items():
        if key == RISING:
            continue
        row, v50, v90 = rows[key], math.exp(midpoint), math.exp(midpoint + width * math.log(9))
        assert row["reason"] is None and row["chance"] == pytest.approx(CHANCE[key[2]])
        assert row["v50_seeds"] == row["v90_seeds"] == 3
        assert row["v50"] == pytest.approx(v50, rel=0.2) and row["v90"] == pytest.approx(v90, rel=0.2)
        assert row["v50_ci95_low"] <= v50 <= row["v50_ci95_high"]
        assert row["v90_ci95_low"] <= v90 <= row["v90_ci95_high"]
    for key, why in ((RISING, "still rising at the largest volume (2560)"), (FLAT, "flat: ")):
        row = rows[key]  # no plateau measured / nothing rises: no number, and the reason
        assert row["v50"] is None and row["v90"] is None and row["v50_seeds"] == row["v90_seeds"] == 0
        assert why in row["reason"] and all(fit["reason"] for fit in row["per_seed"].values())


def test_growth_pace_interval_is_the_t_interval_of_the_seeds_log_fits(
    study_a: TrackedRun, study_a_report: tuple[dict, Path]
) -> None:
    """Each seed fitted on its own store results; the row's v50 is their geometric mean with a t-interval on logs."""
    summary, out = study_a_report
    row = next(
        r for r in summary["growth_pace"] if (r["model"], r["recipe"], r["ability"]) == ("tiny-2m", "curated", "math")
    )
    found = results_by_cell(study_a, "math")
    fits = [fit_growth(VOLUMES, [found[("tiny-2m", "curated", v)][s] for v in VOLUMES], CHANCE["math"]) for s in SEEDS]
    mean, low, high = t_interval([math.log(fit.v50) for fit in fits])
    assert (row["v50"], row["v50_ci95_low"], row["v50_ci95_high"]) == pytest.approx(
        (math.exp(mean), math.exp(low), math.exp(high))
    )
    drawn = drawn_of(out, "growth_pace_by_ability")
    point = series(drawn, "tiny-2m, curated, rt", "v50: math (mean of 3 seeds)")
    whisker = series(drawn, "tiny-2m, curated, rt", "95% interval: v50: math (mean of 3 seeds)")
    assert point["y"] == pytest.approx([row["v50"]])
    assert whisker["low"] + whisker["high"] == pytest.approx([row["v50_ci95_low"], row["v50_ci95_high"]])
    assert not any(s["label"].startswith("v50: ethics") for s in drawn if s["panel"] == "tiny-2m, synthetic, rt")


# ---------------------------------------------------------------- applicability and refusals


def small_sweep(tmp_path: Path, volumes: list[int], seeds: list[int]) -> TrackedRun:
    """Ability scores (no test loss) at `volumes`: curated-N, one model."""
    parent = start_sweep_run(f"sqlite:///{tmp_path / 'mlflow.db'}", "small", "small", {})
    for volume in volumes:
        for seed in seeds:
            factors = {"recipe": "curated", "volume": volume, "model": "m", "permutation": "rt", "seed": seed}
            trial = start_trial_run(parent, f"curated-{volume} seed={seed}", factors)
            trial.log_metric("test_ability/math", 10 + math.log(volume) + seed, step=3)
            trial.finish()
    return parent


def test_one_volume_draws_no_ability_figure_and_no_growth_pace(tmp_path: Path) -> None:
    summary = report_sweep(small_sweep(tmp_path, [160], [0, 1]), tmp_path / "out")
    assert summary["figures"] == {} and summary["figure"] is None and "growth_pace" not in summary
    assert summary["early_phase"] == []  # no test loss logged: no loss figure, no table rows


def test_two_volumes_draw_scores_but_fit_no_pace(tmp_path: Path) -> None:
    summary = report_sweep(small_sweep(tmp_path, [40, 160], [0]), tmp_path / "out")
    assert set(summary["figures"]) == {"ability_vs_volume", "growth_pace_by_ability"}
    (row,) = summary["growth_pace"]
    assert row["v50"] is None and row["v90"] is None and row["reason"] == "fewer than 3 volumes (2)"
    assert "v50 —" in report_lines(summary)[-1]


def test_a_fit_says_why_it_has_no_number() -> None:
    assert fit_growth([10, 40, 160], [30.0, 30.2, 30.1], 25.0).reason.startswith("flat: scores span 0.20")
    saturated = fit_growth([10, 40, 160, 640], [70.0, 71.0, 70.5, 72.0], 25.0)
    assert saturated.v50 is None and "already at the smallest volume (10)" in saturated.reason
    exact = fit_growth([10, 40, 160], [30.0, 50.0, 70.0], 25.0)  # three points, three parameters: determined
    assert exact.reason is None and exact.v50 == pytest.approx(40.0, rel=1e-3)
