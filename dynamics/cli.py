"""`dynamics` command line: `sweep` runs a study, `arrange` runs the arrangement stage alone, `report`
redraws a sweep's figures from MLflow, `data inspect` describes a config's data.

    dynamics sweep --config experiments/configs/offline.yaml
    dynamics arrange --config experiments/configs/offline.yaml
    dynamics report --config experiments/configs/offline.yaml --parent-run <run id>
    dynamics data inspect experiments/configs/offline.yaml
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import yaml

from dynamics.config import ConfigError, load_config
from dynamics.data.sources import DataError

DEFAULT_CONFIG = Path("experiments/configs/offline.yaml")


def _overrides(pairs: list[str], lenient: bool = False) -> dict[str, object]:
    """`--set train.lr=1e-4` pairs, values parsed as YAML scalars; `--lenient` is `data.lenient=true`."""
    parsed: dict[str, object] = {"data.lenient": True} if lenient else {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE")
        parsed[key] = yaml.safe_load(value)
    return parsed


def _sweep(args: argparse.Namespace) -> int:
    from dynamics.sweep import run_sweep

    result = run_sweep(load_config(args.config, _overrides(args.set, args.lenient)))
    print(f"sweep finished: {result.num_trials} trials ({result.failed_trials} failed) in {result.wall_s:.0f} s")
    print(f"parent run: {result.parent_run_id}  tracking: {result.tracking_uri}")
    print(f"figure: {result.summary['figure']}")
    print(f"open the UI: mlflow ui --host 127.0.0.1 --backend-store-uri {result.tracking_uri}")
    print(json.dumps({"early_phase": result.summary["early_phase"]}, indent=1))
    return 1 if result.failed_trials else 0


def _arrange(args: argparse.Namespace) -> int:
    from dynamics.arrange.progress import show_progress
    from dynamics.arrange.stage import arrange_grid
    from dynamics.runtime import prepare_environment, start_ray
    from dynamics.sweep import prepare

    config = load_config(args.config, _overrides(args.set, args.lenient))
    start_ray(prepare_environment(config.scaling.use_gpu))
    study = prepare(config)
    with show_progress():  # bars per pass over the pool; Ray Data draws its own for the embeddings
        arrangements = arrange_grid(study.train_pool, study.test, study.config, study.workdir)
    for (volume, ordering, seed), ref in sorted(arrangements.items()):
        print(f"volume={volume} ordering={ordering} seed={seed} -> {ref.order_path} ({ref.content_hash[:12]})")
    return 0


def _report(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    from dynamics.report import report_sweep
    from dynamics.tracking import default_tracking_uri

    config = load_config(args.config, _overrides(args.set, args.lenient))
    workdir = Path(config.workdir).resolve()
    client = MlflowClient(config.tracking.uri or default_tracking_uri(workdir))
    summary = report_sweep(client, args.parent_run, workdir / "report" / args.parent_run)
    print(json.dumps(summary, indent=1))
    return 0


def _data_inspect(args: argparse.Namespace) -> int:
    from dynamics.data.inspect import format_summary, summarise
    from dynamics.data.sources import load_data
    from dynamics.models import builtin_tokenizer, load_tokenizer

    config = load_config(args.config, _overrides(args.set, args.lenient))
    workdir = Path(config.workdir).resolve()
    loaded = load_data(config.data, min(config.grid.seed), cache_dir=workdir / "cache" / "data", report_dir=workdir)
    first_model = config.models[config.grid.model[0]]
    if first_model.pretrained is None:
        tokenizer = builtin_tokenizer()
    else:
        tokenizer = load_tokenizer(first_model.tokenizer or first_model.pretrained, config.train.template)
    summary = summarise(loaded.table, tokenizer, config.train.template, config.train.max_length)
    print(format_summary(summary, str(loaded.cache_path) if loaded.cache_path else None, config.train.max_length))
    if loaded.cache_hit:
        print("(cache hit)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dynamics", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler in (("sweep", _sweep), ("arrange", _arrange), ("report", _report)):
        command = commands.add_parser(name)
        command.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
        command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key")
        command.add_argument("--lenient", action="store_true", help="skip bad data rows and report each one")
        if name == "report":
            command.add_argument("--parent-run", required=True, help="MLflow run id of the sweep")
        command.set_defaults(handler=handler)
    data_parser = commands.add_parser("data", help="inspect a config's data")
    data = data_parser.add_subparsers(dest="data_command", required=True)
    inspect = data.add_parser("inspect", help="counts per split/task/category, token lengths, cache path")
    inspect.add_argument("config", type=Path, nargs="?", default=DEFAULT_CONFIG)
    inspect.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key")
    inspect.add_argument("--lenient", action="store_true", help="skip bad data rows and report each one")
    inspect.set_defaults(handler=_data_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    except DataError as error:
        print(f"data error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
