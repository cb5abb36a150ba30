"""The command line (dynamics.cli): help that lists what a config can name, `config show`, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamics.arrange.orders import ORDERS
from dynamics.cli import main
from dynamics.data.formats import FORMATS
from dynamics.report import FIGURES
from dynamics.text.templates import TEMPLATES

OFFLINE = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "offline.yaml"


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_lists_every_registered_name(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help([], capsys)
    for command in ("sweep", "arrange", "report", "data", "config"):
        assert command in text
    assert f"data.source: {', '.join(FORMATS.names())}" in text
    assert f"train.template: {', '.join(TEMPLATES.names())}" in text
    assert f"grid.permutation: {', '.join(ORDERS.names())}" in text
    assert "tma_min[0:5]" in text and f"figures: {', '.join(FIGURES.names())}" in text
    assert "test_loss_vs_step" in FIGURES.names() and "ability_vs_volume" in FIGURES.names()


@pytest.mark.parametrize(
    ("argv", "listed", "not_listed"),
    [
        (["sweep"], ["data.source", "train.template", "grid.permutation"], []),
        (["arrange"], ["grid.permutation"], ["train.template"]),
        (["data", "inspect"], ["data.source", "train.template"], ["grid.permutation"]),
        (["config", "show"], ["data.source", "grid.permutation"], []),
    ],
)
def test_each_command_lists_the_names_it_can_take(
    argv: list[str], listed: list[str], not_listed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    text = _help(argv, capsys)
    assert all(f"{key}: " in text for key in listed)
    assert not any(f"{key}: " in text for key in not_listed)


def test_config_show_prints_resolved_values_with_their_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", str(OFFLINE), "--set", "train.lr=0.01"]) == 0
    lines = capsys.readouterr().out.splitlines()
    lr = next(line for line in lines if line.strip().startswith("lr:"))
    assert lr.split("#")[0].strip() == "lr: 0.01" and "# Peak learning rate." in lr
    assert any(line.startswith("  options: {\"per_train_task\": 40") for line in lines)
    assert any(line.startswith("  tiny-2m:") for line in lines)  # model entries nest under `models`
    assert [line for line in lines if "#" not in line] == []  # every section and field says what it is


def test_config_show_fails_like_a_sweep_on_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", str(OFFLINE), "--set", "train.template=study_c"]) == 2
    assert "key 'train.template': unknown template 'study_c'" in capsys.readouterr().err


def test_evaluate_scores_a_named_set_under_its_prefix(tmp_path, capsys, no_ray):
    import json

    import yaml

    from dynamics.config import BuiltinModelConfig, ModelConfig
    from dynamics.models import materialise

    sizes = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    folder = materialise("tiny", ModelConfig(builtin=BuiltinModelConfig(**sizes)), tmp_path).model
    ood = {"source": "builtin", "options": {"per_train_task": 1, "per_test_task": 1}, "split": "test"}
    config = {
        "workdir": str(tmp_path / "work"),
        "data": {"options": {"per_train_task": 2, "per_test_task": 2}},
        "models": {"tiny": {"builtin": sizes}},
        "grid": {"model": ["tiny"]},
        "evaluate": {"sets": [{"name": "ood", "source": ood}]},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = ["evaluate", "--config", str(path), "--checkpoint", folder, "--metrics", "loss"]
    assert main([*argv, "--eval-set", "ood"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert "ood_loss/macro" in scores and not any(key.startswith("test_") for key in scores)
    assert len([key for key in scores if key.startswith("ood_loss/task/")]) == 11  # one item of each test task
    assert main([*argv, "--eval-set", "valid"]) == 2
    assert "--eval-set 'valid': not one of" in capsys.readouterr().err


def test_report_takes_the_sweep_by_name_or_run_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dynamics.tracking import default_tracking_uri, start_sweep_run, start_trial_run

    workdir = tmp_path / "work"
    workdir.mkdir()
    sweep = start_sweep_run(default_tracking_uri(workdir), "dynamics-offline", "offline-study", {})
    factors = {"volume": 160, "model": "m", "permutation": "nft", "seed": 0}
    trial = start_trial_run(sweep, "n=160 model=m perm=nft seed=0", factors)
    for step in (0, 2):
        trial.log_metric("test_loss/macro", 2.0 - step / 10, step=step)
    trial.finish()
    config = ["--config", str(OFFLINE), "--set", f"workdir={workdir}"]
    for sweep_args in (["offline-study"], [sweep.run_id], [], ["--parent-run", sweep.run_id]):
        assert main(["report", *sweep_args, *config]) == 0
        lines = capsys.readouterr().out.splitlines()
        figures = [line.split(": ", 1) for line in lines if line.startswith("figure ")]
        assert [name for name, _ in figures] == ["figure test_loss_vs_step"]
        assert all(Path(path).stat().st_size > 10_000 for _, path in figures)
        assert any(line.startswith("  160 examples model=m perm=nft: ") for line in lines)
    assert main(["report", "no-such-sweep", *config]) == 2
    assert "no sweep named 'no-such-sweep' in experiment 'dynamics-offline'" in capsys.readouterr().err
    assert main(["report", "offline-study", "--parent-run", "0" * 32, *config]) == 2
