"""`dynamics` command line: `sweep` runs a study, `arrange` runs the arrangement stage alone, `report`
redraws a sweep's figures from MLflow, `evaluate` scores saved eval checkpoints, `data inspect` describes a
config's data, `config show` prints the resolved config with what each field means.

    dynamics sweep --config experiments/configs/offline.yaml
    dynamics arrange --config experiments/configs/offline.yaml
    dynamics report offline-study --config experiments/configs/offline.yaml   (a sweep name or parent run id)
    dynamics evaluate --config experiments/configs/offline.yaml --run <trial run id> --metrics rouge_l exact_match
    dynamics data inspect experiments/configs/offline.yaml
    dynamics config show experiments/configs/offline.yaml

Exit codes: 0 done; 1 a sweep with failed trials; 2 a config, data or preflight error, or a busy workdir (one
line, before any Ray work); 130 interrupted (Ctrl-C or SIGTERM; runs KILLED, Ray work stopped).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from dynamics.config import ConfigError, SweepConfig, load_config, parse_overrides
from dynamics.data.problems import DataError

DEFAULT_CONFIG = Path("experiments/configs/offline.yaml")
MAX_FAILURE_LINES = 10  # a grid of hundreds of failed trials prints the first ten, then a count


def registered_names() -> dict[str, list[str]]:
    """What a config can name, by the key that names it (for `--help`)."""
    from dynamics.arrange.orders import ORDERS
    from dynamics.data.formats import FORMATS
    from dynamics.evaluate.metrics import METRICS
    from dynamics.report import FIGURES
    from dynamics.text.templates import TEMPLATES

    return {
        "data.source": FORMATS.names(),
        "train.template": TEMPLATES.names(),
        "grid.permutation": ORDERS.names(),
        "figures": FIGURES.names(),
        "metrics": METRICS.names(),
    }


class _Parser(argparse.ArgumentParser):
    """A parser whose help ends with the registered names a config can use (`names`: which keys; None: all).

    The names are read when help is shown, not when the parser is built, so a plain command does not import
    every registry's modules just to parse its arguments.
    """

    def __init__(self, *args: Any, names: list[str] | None = None, **kwargs: Any):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self._names = names

    def format_help(self) -> str:
        self.epilog = _names_epilog(self._names)
        return super().format_help()


def _names_epilog(keys: list[str] | None = None) -> str:
    lines = ["registered names:"]
    for key, names in registered_names().items():
        if keys is None or key in keys:
            lines.append(f"  {key}: {', '.join(names)}")
    if keys is None or "grid.permutation" in keys:
        lines.append("  (an order with rounds takes a range [i:j], e.g. tma_min[0:5])")
    return "\n".join(lines)


def _overrides(pairs: list[str], lenient: bool = False) -> dict[str, object]:
    """`--set train.lr=1e-4` pairs, values read as written (`dynamics.config.overrides`); `--lenient` too."""
    return parse_overrides(pairs, lenient)


def _config(args: argparse.Namespace) -> SweepConfig:
    return load_config(args.config, _overrides(args.set, args.lenient), offline=getattr(args, "offline", False))


def _sweep(args: argparse.Namespace) -> int:
    from dynamics.sweep.plan import check_names
    from dynamics.workdir_lock import refuse_if_busy

    config = _config(args)
    check_names(config, origin=str(args.config))  # before the driver's imports (torch, transformers, Ray)
    if args.dry_run:
        from dynamics.sweep.dry_run import dry_run

        print(dry_run(config, args.mfu, args.device, args.assume_pool, args.assume_tokens))
        return 0
    refuse_if_busy(Path(config.workdir).expanduser().resolve())  # the same: a busy workdir refused in a second
    from dynamics.report import format_table, report_lines
    from dynamics.sweep.driver import run_sweep

    result = run_sweep(config, origin=str(args.config), resume=args.resume)
    for line in result.truncation:
        print(f"truncation: {line}")  # the figures average over what is left of these test tasks
    for line in result.failures[:MAX_FAILURE_LINES]:
        print(f"trial failed: {line}", file=sys.stderr)
    if len(result.failures) > MAX_FAILURE_LINES:
        print(f"… and {len(result.failures) - MAX_FAILURE_LINES} more failed trials", file=sys.stderr)
    if result.summary is None:
        print(
            f"sweep failed: all {result.num_trials} trials failed (first: {result.first_error}); "
            f"run {result.parent_run_id} in {result.tracking_uri} is FAILED",
            file=sys.stderr,
        )
        return 1
    print(f"sweep finished: {result.num_trials} trials ({result.failed_trials} failed) in {result.wall_s:.0f} s")
    print(f"parent run: {result.parent_run_id}  tracking: {result.tracking_uri}")
    for line in report_lines(result.summary):
        print(line)
    from dynamics.tracking import TrackedRun, is_tracking_server, ui_link

    experiment = TrackedRun(result.tracking_uri, result.parent_run_id).get().info.experiment_id
    if not is_tracking_server(result.tracking_uri):
        print(f"open the UI: mlflow ui --host 127.0.0.1 --backend-store-uri {result.tracking_uri}")
    print(f"the sweep's runs: {ui_link(result.tracking_uri, experiment)}")
    print(f"early-phase {result.summary['metric']} (mean over the first third of steps; ± 95% interval over seeds):")
    for line in format_table(result.summary["early_phase"]):
        print(f"  {line}")
    return 1 if result.failed_trials else 0


def _arrange(args: argparse.Namespace) -> int:
    from dynamics.arrange.progress import show_progress
    from dynamics.sweep.interrupts import second_interrupt_forces
    from dynamics.sweep.plan import arrangements_needed
    from dynamics.sweep.runtime import is_local, prepare_environment, start_ray
    from dynamics.sweep.study import build_study_arrangements, check_config, prepare
    from dynamics.workdir_lock import hold_workdir

    config = _config(args)
    worker_env = prepare_environment(config)  # offline settings before any data loads
    with second_interrupt_forces(), hold_workdir(Path(config.workdir).resolve(), "arrange"):
        if not is_local():
            check_config(config, origin=str(args.config))  # a config error fails before joining
            start_ray(worker_env)  # cheap on a cluster, and prepare needs its node count
        study = prepare(config, origin=str(args.config))
        start_ray(worker_env, study.num_cpus)
        wanted = arrangements_needed(study.trials)
        with show_progress():  # bars per pass over the pool; Ray Data draws its own for the embeddings
            refs = build_study_arrangements(study, wanted)
    for key, ref in sorted(refs.items()):
        print(
            f"volume={key.volume} permutation={key.permutation} seed={key.seed} -> {ref.order_path} "
            f"({ref.content_hash[:12]})"
        )
    return 0


def _sweep_run_id(tracking_uri: str, experiment: str, args: argparse.Namespace, default_name: str) -> str:
    """The parent run `dynamics report` reads: `--parent-run` as given, else the positional sweep (a sweep name
    in the config's experiment, else a run id), else the config's sweep name."""
    from dynamics.tracking import client_for, find_sweep_run

    if args.parent_run is not None and args.sweep not in (None, args.parent_run):
        raise ConfigError(f"report: sweep {args.sweep!r} and --parent-run {args.parent_run!r} name two runs; give one")
    if args.parent_run is not None:
        return args.parent_run
    target = args.sweep or default_name
    found = find_sweep_run(tracking_uri, experiment, target)
    if found is not None:
        return found.info.run_id
    if args.sweep is not None:
        from mlflow.exceptions import MlflowException

        try:
            return client_for(tracking_uri).get_run(target).info.run_id
        except MlflowException:
            pass
    raise ConfigError(
        f"report: no sweep named {target!r} in experiment {experiment!r} of {tracking_uri}, and no run with that id"
    )


def _report(args: argparse.Namespace) -> int:
    from dynamics.report import NothingToReport, format_table, report_lines, report_sweep
    from dynamics.tracking import TrackedRun, resolve_tracking_uri

    config = _config(args)
    workdir = Path(config.workdir).resolve()
    tracking_uri = resolve_tracking_uri(config.tracking.uri, workdir)
    run_id = _sweep_run_id(tracking_uri, config.tracking.experiment, args, config.name)
    try:
        summary = report_sweep(TrackedRun(tracking_uri, run_id), workdir / "report" / run_id)
    except NothingToReport as error:
        print(f"report: {error}", file=sys.stderr)
        return 1
    print(f"sweep run: {run_id}  tracking: {tracking_uri}")
    for line in report_lines(summary):
        print(line)
    if summary["early_phase"]:
        print(f"early-phase {summary['metric']} (mean over the first third of steps; ± 95% interval over seeds):")
        for line in format_table(summary["early_phase"]):
            print(f"  {line}")
    return 0


def _evaluation_request(args: argparse.Namespace, config: SweepConfig, model_key: str | None):
    """The OfflineEvaluation of `dynamics evaluate`: metric names checked, the test split loaded (cached)."""
    from dynamics.data.schema import split_of
    from dynamics.data.sources import load_data
    from dynamics.evaluate.metrics import METRICS
    from dynamics.evaluate.offline import OfflineEvaluation
    from dynamics.models.reward import materialise_reward_model
    from dynamics.registry import UnknownName
    from dynamics.sweep.payload import TEST_COLUMNS

    in_loop = [name for group in config.evaluate.in_loop for name in group.metrics]
    metrics = tuple(args.metrics or ["loss", *in_loop])
    workdir = Path(config.workdir).resolve()
    try:
        needs_reward = any("reward_model" in METRICS.get(name).needs for name in metrics)
    except UnknownName as error:
        raise ConfigError(f"--metrics: {error}") from None
    if needs_reward and config.evaluate.reward_model is None:
        raise ConfigError(f"{args.config}: key 'evaluate.reward_model': --metrics {list(metrics)} need a reward model")
    loaded = load_data(
        config.data, seed=min(config.grid.seed), cache_dir=workdir / "cache" / "data", report_dir=workdir
    )
    test, prefix = split_of(loaded.table, "test"), "test"
    if args.eval_set is not None:
        from dynamics.sweep.study import load_eval_sets

        names = [entry.name for entry in config.evaluate.sets]
        if args.eval_set not in names:
            listed = names or "none"
            raise ConfigError(f"--eval-set {args.eval_set!r}: not one of {args.config}'s evaluate.sets: {listed}")
        sets = dict(load_eval_sets(config, loaded.table, min(config.grid.seed), workdir, str(args.config)))
        test, prefix = sets[args.eval_set], args.eval_set
    test = test.select(list(TEST_COLUMNS))
    reward = config.evaluate.reward_model
    return OfflineEvaluation(
        train=config.train if model_key is None else config.train_for(model_key),
        evaluate=config.evaluate,
        metrics=metrics,
        subset=args.subset,
        test_rows=tuple(test.to_pylist()),
        reward_model=materialise_reward_model(reward, workdir) if needs_reward and reward is not None else None,
        seed=min(config.grid.seed),
        prefix=prefix,
    )


def _evaluate(args: argparse.Namespace) -> int:
    from dynamics.evaluate.offline import checkpoints_of, log_scores, score_checkpoint, score_checkpoints
    from dynamics.sweep.runtime import prepare_environment, start_ray
    from dynamics.tracking import TrackedRun, resolve_tracking_uri

    config = _config(args)
    if args.checkpoint is not None:
        if not Path(args.checkpoint).is_dir() and "://" not in args.checkpoint:
            raise ConfigError(f"--checkpoint: no such folder {args.checkpoint}")
        request = _evaluation_request(args, config, args.model)
        print(json.dumps(score_checkpoint(args.checkpoint, request), indent=1, sort_keys=True))
        return 0
    run = TrackedRun(resolve_tracking_uri(config.tracking.uri, Path(config.workdir).resolve()), args.run)
    checkpoints = checkpoints_of(run)
    if not checkpoints:
        raise ConfigError(
            f"--run {args.run}: the run has no eval checkpoints (tags eval_checkpoint/step-N): train with "
            "checkpoints.eval_every or checkpoints.eval_steps set"
        )
    request = _evaluation_request(args, config, run.get().data.params.get("model"))
    start_ray(prepare_environment(config))
    written = log_scores(run, score_checkpoints(checkpoints, request))
    print(f"scored {len(checkpoints)} checkpoints of run {args.run} at steps {sorted(checkpoints)}")
    print(json.dumps({key: list(steps) for key, steps in sorted(written.items()) if "/task/" not in key}, indent=1))
    return 0


def _data_inspect(args: argparse.Namespace) -> int:
    from dynamics.data.inspect import format_summary, summarise
    from dynamics.data.sources import load_data
    from dynamics.models import builtin_tokenizer, load_tokenizer
    from dynamics.sweep.plan import check_names
    from dynamics.text.encoding import Truncation
    from dynamics.text.templates import TEMPLATES

    config = _config(args)
    check_names(config, origin=str(args.config))
    workdir = Path(config.workdir).resolve()
    loaded = load_data(config.data, min(config.grid.seed), cache_dir=workdir / "cache" / "data", report_dir=workdir)
    template = TEMPLATES.get(config.train.template)
    first_model = config.models[config.grid.model[0]]
    if first_model.pretrained is None:
        tokenizer = builtin_tokenizer()
    else:
        tokenizer = load_tokenizer(first_model.tokenizer or first_model.pretrained, config.train.template)
    summary = summarise(loaded.table, tokenizer, template, config.train.max_length, Truncation.of(config.train))
    print(format_summary(summary, str(loaded.cache_path) if loaded.cache_path else None, config.train.max_length))
    if loaded.cache_hit:
        print("(cache hit)")
    return 0


def _config_show(args: argparse.Namespace) -> int:
    from dynamics.config.show import describe_config
    from dynamics.sweep.plan import check_names

    config = _config(args)
    check_names(config, origin=str(args.config))
    print(describe_config(config))
    return 0


def _config_arguments(parser: argparse.ArgumentParser, positional: bool = False) -> None:
    if positional:
        parser.add_argument("config", type=Path, nargs="?", default=DEFAULT_CONFIG, help="a sweep config (YAML)")
    else:
        parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="a sweep config (YAML)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key")
    parser.add_argument("--lenient", action="store_true", help="skip bad data rows and report each one")
    parser.add_argument("--offline", action="store_true", help="run the config's offline variant (its `offline:` keys)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dynamics", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    described = {
        "sweep": ("run a study: arrange, train every grid point, track, report", None),
        "arrange": ("compute (or read from cache) the arrangements a config's grid needs", ["grid.permutation"]),
        "report": ("redraw a sweep's figures and tables from MLflow", ["figures"]),
    }
    handlers = {"sweep": _sweep, "arrange": _arrange, "report": _report}
    for name, (summary, keys) in described.items():
        command = commands.add_parser(name, help=summary, description=summary, names=keys)
        _config_arguments(command)
        if name == "report":
            command.add_argument(
                "sweep", nargs="?", help="the sweep: its name (default: the config's `name`) or its parent run id"
            )
            command.add_argument("--parent-run", help="MLflow run id of the sweep (the same as giving it as `sweep`)")
        if name == "sweep":
            command.add_argument(
                "--resume",
                action="store_true",
                help="continue the sweep of this name: only its unfinished trials run, each from its last checkpoint",
            )
            command.add_argument(
                "--dry-run",
                action="store_true",
                help="print the trial table, each trial's resources and its estimated GPU-hours; start nothing",
            )
            command.add_argument("--mfu", type=float, default=0.4, help="MFU the --dry-run estimate assumes")
            command.add_argument("--device", default="H100", help="GPU the --dry-run estimate assumes (peak FLOP/s)")
            command.add_argument("--assume-pool", type=int, help="--dry-run: training examples of 'all' if not read")
            command.add_argument("--assume-tokens", type=float, help="--dry-run: tokens per example (else measured)")
        command.set_defaults(handler=handlers[name])
    data_parser = commands.add_parser("data", help="inspect a config's data", names=["data.source"])
    data = data_parser.add_subparsers(dest="data_command", required=True)
    inspect = data.add_parser(
        "inspect",
        help="counts per split/task/category, token lengths, cache path",
        names=["data.source", "train.template"],
    )
    _config_arguments(inspect, positional=True)
    inspect.set_defaults(handler=_data_inspect)
    evaluate = commands.add_parser(
        "evaluate",
        help="score saved eval checkpoints with any registered metric and log to their run",
        description="score a trial's eval checkpoints (--run, fanned out over Ray workers, logged to that run at "
        "each checkpoint's step) or one checkpoint folder (--checkpoint, printed)",
        names=["metrics"],
    )
    _config_arguments(evaluate)
    target = evaluate.add_mutually_exclusive_group(required=True)
    target.add_argument("--run", help="MLflow run id of a trial whose eval checkpoints to score")
    target.add_argument("--checkpoint", help="one eval checkpoint folder (or URI) to score")
    evaluate.add_argument("--metrics", nargs="+", help="registered metric names (default: loss and the in-loop ones)")
    evaluate.add_argument("--subset", type=int, help="test items the generation metrics score (default: all)")
    evaluate.add_argument("--model", help="the models key whose train settings apply to --checkpoint")
    evaluate.add_argument("--eval-set", help="an evaluate.sets name to score instead of the test split (e.g. valid)")
    evaluate.set_defaults(handler=_evaluate)
    config_parser = commands.add_parser("config", help="show a config")
    config_commands = config_parser.add_subparsers(dest="config_command", required=True)
    show = config_commands.add_parser(
        "show", help="the resolved config (defaults and overrides applied), each field with its description"
    )
    _config_arguments(show, positional=True)
    show.set_defaults(handler=_config_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    from dynamics.sweep.interrupts import EXIT_INTERRUPTED, SweepInterrupted
    from dynamics.sweep.preflight import PreflightError
    from dynamics.workdir_lock import WorkdirBusy

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except PreflightError as error:
        print(f"preflight: {error}", file=sys.stderr)
        return 2
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    except DataError as error:
        print(f"data error: {error}", file=sys.stderr)
        return 2
    except WorkdirBusy as error:
        print(f"busy: {error}", file=sys.stderr)
        return 2
    except SweepInterrupted as interrupted:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("interrupted before any Ray work or run started; nothing to clean up", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
