"""Every experiment config is valid, says how to run it, plans in full on local data in its own layout (and
so does its offline variant), and can point at any registered data source."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from experiment_fixtures import FIXTURES, NEEDS_SHARED

from dynamics.config import ModelConfig, load_config, parse_config
from dynamics.config.builtin_model import BuiltinModelConfig
from dynamics.config.loading import OFFLINE_KEY
from dynamics.data.formats import FORMATS
from dynamics.models import materialise
from dynamics.sweep import study as study_module
from dynamics.sweep.payload import trial_name
from dynamics.sweep.plan import arrangements_needed, check_names
from dynamics.sweep.resources import Capacity

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "experiments" / "configs").glob("*.yaml"))
STUDIES = [path for path in CONFIGS if path.stem != "offline"]
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TINY = BuiltinModelConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4)
# What the study configs ask for fits a GPU cluster of this size (the 33B model takes 32 GPUs per trial).
FAKE_CLUSTER = Capacity(cpus=4096.0, gpus=512)
# The experiments of both studies (issue 13): each has its config.
EXPERIMENTS = {
    "study_a_doit_volume", "study_a_doit_curated_vs_synthetic", "study_a_doit_construction", "study_a_doit_ood",
    "study_b_niv2_positioning", "study_b_p3_positioning", "study_b_flan_mini_positioning",
    "study_b_flan_mini_permutations", "study_b_niv2_similarity", "study_b_niv2_granularity",
    "study_b_tma3_flan_mini", "study_b_tma3_sharegpt", "study_b_tma3_norobots", "study_b_tma5_flan_mini",
    "study_b_tma_rounds",
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_pretrained(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny LLaMA with its tokenizer saved as a Hugging Face folder: what `pretrained:` loads offline."""
    folder = tmp_path_factory.mktemp("pretrained")
    return materialise("tiny", ModelConfig(builtin=TINY), folder).model


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_valid_and_headed_by_its_command(path: Path) -> None:
    config = load_config(path)
    check_names(config, origin=str(path))  # every source, template and permutation it names is registered
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# ") and "experiments/sweep.py" in first_line
    assert f"experiments/configs/{path.name}" in first_line
    assert set(config.grid.model) <= set(config.models)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
@pytest.mark.parametrize("source", FORMATS.names())
def test_config_can_point_at_any_registered_source(path: Path, source: str) -> None:
    config = load_config(path, {"data.source": source, "data.path": "somewhere/local", "data.options": {}})
    check_names(config, origin=str(path))
    assert config.data.source == source


def test_at_least_one_config_per_study() -> None:
    names = {path.stem for path in CONFIGS}
    assert "offline" in names
    assert any(name.startswith("study_a_") for name in names) and any(name.startswith("study_b_") for name in names)


@pytest.mark.skipif(not (SHARED / "niv2-sample").is_dir(), reason=f"no NIV2 sample at {SHARED}")
def test_offline_study_prepares_on_the_real_niv2_sample(tmp_path: Path) -> None:
    from dynamics.sweep.study import prepare

    offline = next(path for path in CONFIGS if path.stem == "offline")
    config = load_config(
        offline,
        {
            "workdir": str(tmp_path / "work"),
            "data.source": "niv2",
            "data.path": str(SHARED / "niv2-sample"),
            "data.options": {},  # the built-in source's options are not niv2's
            "data.sample": {"mode": "first", "per_train_task": 10, "per_test_task": 5},
            "grid.volume": [32, "all"],
        },
    )
    study = prepare(config)
    assert study.train_pool.num_rows == 90 and study.test.num_rows == 60  # 9 × 10 train, 12 × 5 test
    assert study.config.grid.volume == [32, 90]
    assert set(study.train_pool.column("source").to_pylist()) == {"niv2"}


def test_every_experiment_of_both_studies_has_its_config() -> None:
    assert {path.stem for path in STUDIES} == EXPERIMENTS


def _planned_on_local_data(path: Path, tmp_path: Path, pretrained: str) -> dict:
    """The config as written, its data paths pointed at a local copy in the same layout, its models at a local
    tiny folder of the same keys (their own train/scaling overrides kept) and its reward model a built-in one."""
    raw = yaml.safe_load(path.read_text())
    raw.pop(OFFLINE_KEY)
    source = raw["data"]["source"]
    if source in NEEDS_SHARED and not NEEDS_SHARED[source].exists():
        pytest.skip(f"no shared sample at {NEEDS_SHARED[source]}")
    for dotted, value in FIXTURES[source](tmp_path / "data").items():
        *parents, leaf = dotted.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[leaf] = value
    for entry in raw.get("evaluate", {}).get("sets", []):
        if "source" in entry:  # an evaluation pool in the same layout (DoIT's OOD exams under the same root)
            entry["source"]["path"] = raw["data"]["path"]
    for model in raw["models"].values():
        model["pretrained"] = pretrained
    if raw.get("evaluate", {}).get("reward_model"):
        raw["evaluate"]["reward_model"] = {"builtin": TINY.model_dump()}
    raw["workdir"] = str(tmp_path / "work")
    return raw


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_each_study_config_plans_in_full_on_local_data_in_its_layout(
    path: Path, tmp_path: Path, tiny_pretrained: str, monkeypatch: pytest.MonkeyPatch, no_ray
) -> None:
    """Full planning (data loaded, sampled and split, recipes sized, volumes resolved, truncation checked, trial
    table and arrangements listed), as the driver runs it before any Ray work, on a fake GPU cluster's capacity."""
    raw = _planned_on_local_data(path, tmp_path, tiny_pretrained)
    monkeypatch.setattr(study_module, "known_capacity", lambda config, local: FAKE_CLUSTER)
    config = parse_config(raw, origin=str(path))
    study = study_module.prepare(config, origin=str(path))
    written = parse_config(raw | {"workdir": raw["workdir"]}, origin=str(path)).grid
    assert len(study.trials) == len(written.raw_points())  # every grid point became a trial
    assert {t.permutation for t in study.trials} == set(written.permutation)
    assert {t.model for t in study.trials} == set(written.model)
    assert Counter(t.seed for t in study.trials) == {
        seed: len(study.trials) // len(written.seed) for seed in written.seed
    }
    assert len({trial_name(t) for t in study.trials}) == len(study.trials)  # names tell every trial apart
    assert study.test.num_rows > 0 and study.train_pool.num_rows > 0
    keys = arrangements_needed(study.trials)
    assert len(keys) == len({(t.recipe, t.volume, t.permutation, t.seed) for t in study.trials})
    if written.recipe:
        assert {t.recipe for t in study.trials} == {r.split("-")[0] for r in written.recipe}


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_each_offline_variant_plans_in_full_on_this_machine(path: Path, tmp_path: Path, no_ray) -> None:
    config = load_config(path, {"workdir": str(tmp_path / "work")}, offline=True)
    assert config.data.source == "builtin" and all(m.builtin is not None for m in config.models.values())
    assert (
        not config.scaling.use_gpu
        and config.evaluate.reward_model is None
        or (config.evaluate.reward_model is not None and config.evaluate.reward_model.builtin is not None)
    )
    study = study_module.prepare(config, origin=str(path))
    assert len(study.trials) == len(config.grid.raw_points())
    written = load_config(path)
    assert config.grid.permutation == written.grid.permutation or "rounds" in path.stem  # the same experiment
    assert bool(config.grid.recipe) == bool(written.grid.recipe)


def test_a_config_without_an_offline_variant_says_so(tmp_path: Path) -> None:
    bare = tmp_path / "bare.yaml"
    bare.write_text("models: {tiny: {builtin: {hidden_size: 64, intermediate_size: 172, num_hidden_layers: 2, "
                    "num_attention_heads: 4}}}\ngrid: {model: [tiny]}\n")  # fmt: skip
    from dynamics.config import ConfigError

    with pytest.raises(ConfigError, match=r"bare.yaml: --offline: the config has no 'offline:' mapping"):
        load_config(bare, offline=True)
    assert load_config(bare).grid.model == ["tiny"]
