"""``perflaw sweep``, ``perflaw demo`` and ``perflaw report``: the end-to-end job."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from perflaw.law.options import DEFAULT_N_BOOT, DEFAULT_REACH
from perflaw.atomic import json_ready
from perflaw.progress import log_line
from perflaw.errors import PerflawError, MissingFileError

# The demo's data: one Markov chain (entropy rate about 3.1 nats/item) sampled at three
# log sizes, so the largest models over-fit the smaller logs (see `demo_spec`).
DEMO_CHAIN = {"items": 1000, "teleport": 0.3, "branching": 8, "concentration": 0.5, "seed": 1}
DEMO_USERS = {"small": (300, 600, 1500), "tiny": (100, 200, 400)}


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_sweep(subparsers)
    _register_demo(subparsers)
    _register_report(subparsers)


# ------------------------------------------------------------------ sweep
def _register_sweep(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="train a grid of model sizes on each data variant and record every run",
        description="Run a sweep spec (TOML) or a preset. Finished runs are skipped on re-runs; "
        "an interrupted run resumes from its checkpoint.",
    )
    parser.add_argument("spec", nargs="?", help="sweep spec (TOML)")
    parser.add_argument("--preset", choices=["paper", "full", "cpu-small"], metavar="PRESET",
                        help="a built-in spec instead of SPEC: paper (the paper's grid), full, or cpu-small")
    parser.add_argument("--data", action="append", default=[], metavar="PATH",
                        help="with --preset: a data file to use instead of the built-in synthetic data (repeatable)")
    parser.add_argument("--out", default=None, help="output folder (default: perflaw-out/<spec name>)")
    parser.add_argument("--device", default=None, help="override the spec's device (auto, cpu, cuda, ...)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="CPU threads per training run (small models are often fastest with 1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a spec field, checked like the spec: e.g. train.lr=0.01, grid.dim=[8,16], "
                        "name=quick (VALUE is read as TOML, else as text; repeatable)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the runs that would be trained (sizes, parameter counts, done already or not) "
                        "and stop")
    parser.add_argument("--report", action="store_true", help="write the report when the sweep ends")
    parser.add_argument("--json", action="store_true",
                        help="print the result as JSON on stdout (the summary, or with --dry-run the runs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log lines still go to stderr)")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="run every training run as a task on a Ray cluster: ADDRESS is its head's HOST:PORT "
                        "(default: RAY_ADDRESS or a cluster started on this machine); --torch-threads is then "
                        "the CPUs each run asks for")
    from perflaw.tracking import add_track_flags

    add_track_flags(parser)
    parser.set_defaults(func=run_sweep_command)


def load_spec_from_args(args: argparse.Namespace) -> Any:
    """The spec a sweep command describes: a file or a preset, with ``--set`` and ``--device`` applied."""
    from perflaw import sweep

    if bool(args.spec) == bool(args.preset):
        raise PerflawError("give either a spec file or --preset")
    if args.spec:
        path = Path(args.spec)
        if not path.is_file():
            raise MissingFileError(f"sweep spec {str(path)!r} does not exist")
        raw, base_dir = sweep.read_spec_file(path), path.parent
    else:
        datasets = [{"name": Path(p).stem, "path": str(Path(p).resolve())} for p in args.data] or None
        raw, base_dir = sweep.preset(args.preset, datasets), None
    for item in args.overrides:
        apply_override(raw, item)
    spec = sweep.load_spec(raw, base_dir=base_dir)
    if args.device:
        spec = sweep.with_settings(spec, device=args.device)
    return spec


def apply_override(raw: dict[str, Any], item: str) -> None:
    """``KEY=VALUE`` into the raw spec: dotted keys reach into tables, VALUE is TOML or else text.

    Examples
    --------
    >>> raw = {"train": {"lr": 0.1}}
    >>> apply_override(raw, "train.lr=0.01"); apply_override(raw, "grid.dim=[8, 16]"); raw
    {'train': {'lr': 0.01}, 'grid': {'dim': [8, 16]}}
    """
    from perflaw.sweep import parse_toml_value

    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise PerflawError(f"--set needs KEY=VALUE, got {item!r}")
    *tables, name = [part.strip() for part in key.split(".")]
    target = raw
    for table in tables:
        target = target.setdefault(table, {})
        if not isinstance(target, dict):
            raise PerflawError(f"--set {key}: {table!r} is not a table in the spec")
    target[name] = parse_toml_value(text.strip())


def run_sweep_command(args: argparse.Namespace) -> int:
    from perflaw import sweep

    spec = load_spec_from_args(args)
    out = Path(args.out or Path("perflaw-out") / spec.name)
    if args.dry_run:
        return _print_plan(sweep.plan(spec, out), spec, out, args.json)
    _set_torch_threads(args.torch_threads)
    from perflaw.tracking import TrackedTrain, make_tracker

    tracker = make_tracker(args.track, args.track_uri, args.track_dir, experiment=f"perflaw-sweep-{spec.name}")
    train_fn = TrackedTrain(tracker, tags={"perflaw.sweep": spec.name}) if tracker is not None else None
    executor = None  # this process
    if args.ray is not None:
        from perflaw.cluster import RayExecutor

        executor = RayExecutor(args.ray or None, cpus_per_run=args.torch_threads or 1)
    summary = sweep.run_sweep(spec, out, progress=not args.no_progress, executor=executor, train_fn=train_fn)
    report = None
    if args.report:
        from perflaw.report import make_report

        report = make_report(out, out / "report")
    if args.json:
        payload = summary.to_dict() | ({"report": report.payload} if report is not None else {})
        _print_json(payload)
        return 1 if summary.failed else 0
    print(f"sweep {spec.name}: {summary.finished} trained, {summary.skipped} already done, "
          f"{summary.failed} failed, of {summary.total}; results in {out / sweep.STORE_NAME}")
    if report is not None:
        print(report.summary)
    return 1 if summary.failed else 0


def _print_plan(rows: list[dict[str, Any]], spec: Any, out: Path, as_json: bool) -> int:
    done = sum(row["status"] == "done" for row in rows)
    if as_json:
        _print_json({"name": spec.name, "out_dir": str(out), "runs": rows, "total": len(rows), "done": done})
        return 0
    print(f"sweep {spec.name}: {len(rows)} runs, {done} done already, {len(rows) - done} to train; output {out}")
    for row in rows:
        print(f"  {row['status']:<8} {row['variant']:<28} {row['model']} {row['layers']}x{row['dim']} "
              f"seed {row['seed']}: {row['params']:,} parameters ({row['params_non_embedding']:,} non-embedding)")
    return 0


def _print_json(payload: Any) -> None:
    """The result on stdout as strict JSON (NaN and infinities as null)."""
    json.dump(json_ready(payload), sys.stdout, indent=2, allow_nan=False, default=str)
    sys.stdout.write("\n")


def _set_torch_threads(threads: int | None) -> None:
    if threads is None:
        return
    if threads < 1:
        raise PerflawError(f"--torch-threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


# ------------------------------------------------------------------- demo
def _register_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the whole job on built-in synthetic data: D′, a small sweep, the law, a recommendation per dataset",
        description="Generates three synthetic logs of one Markov chain at three sizes (300, 600 and 1,500 "
        "users), measures their D′, trains a small grid of llama models with two seeds on the CPU, fits "
        "the Performance Law to each log, checks it by a backtest against simpler baselines, prints one "
        "recommended model size per log with its confidence, and writes a report folder with an HTML page.",
    )
    parser.add_argument("--out", default="perflaw-demo", help="output folder (default: perflaw-demo)")
    parser.add_argument("--size", choices=["small", "tiny"], default="small",
                        help="small (default: 72 runs, about 5 minutes on 2 cores) or tiny (well under a minute, "
                        "for tests)")
    parser.add_argument("--n-boot", type=int, default=None, help="bootstrap refits (default 200, tiny: 20)")
    parser.add_argument("--device", default="cpu", help="device of every run: cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="CPU threads per run (default 1: fastest for these small models)")
    parser.add_argument("--json", action="store_true",
                        help="print the result as JSON on stdout: the answers per dataset, the sweep summary, "
                        "the report's path")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log lines still go to stderr)")
    parser.set_defaults(func=run_demo)


def demo_spec(size: str = "small", device: str = "cpu") -> dict[str, Any]:
    """The demo's sweep: one synthetic Markov chain at three log sizes × a small llama grid.

    Datasets are named by their size ("a-300-users", ...), in increasing order. With
    dropout 0 (the paper's setting) test NDCG@10 rises and then falls with the
    embedding dimension on the smaller logs: the largest models over-fit them.
    """
    tiny = size == "tiny"
    chain = {**DEMO_CHAIN, "items": 80} if tiny else DEMO_CHAIN
    return {
        "name": f"demo-{size}",
        "datasets": [{"name": f"{letter}-{users}-users", "synth": {**chain, "users": users}}
                     for letter, users in zip("abc", DEMO_USERS["tiny" if tiny else "small"])],
        "data": {"max_len": [20]},
        "grid": {"model": ["llama"], "layers": [1, 2, 3] if tiny else [1, 2, 4],
                 "dim": [4, 8, 12] if tiny else [8, 16, 32, 64]},
        "seeds": [0] if tiny else [0, 1],
        "train": {"loss": "ce", "protocol": "full", "dropout": 0.0, "epochs": 2 if tiny else 30,
                  "batch_size": 128 if tiny else 64, "lr": 3e-3 if tiny else 1e-2,
                  "warmup_steps": 20 if tiny else 10, "patience": 3, "device": device},
    }


def run_demo(args: argparse.Namespace) -> int:
    from perflaw import sweep, synth
    from perflaw.report import make_report

    _set_torch_threads(args.torch_threads)
    out = Path(args.out)
    spec = sweep.load_spec(demo_spec(args.size, args.device))
    say = log_line if args.json else print  # with --json, stdout holds the result alone
    say(f"perflaw demo: {len(sweep.expand(spec))} training runs on {len(spec.datasets)} synthetic datasets; "
        f"output in {out}/")
    for dataset in spec.datasets:
        config = sweep.synth_config(dataset.synth)
        say(f"  {dataset.name:<13} {config.users} users, {config.items} items, "
            f"analytic entropy rate {synth.entropy_rate(config):.3f} nats/item")
    summary = sweep.run_sweep(spec, out, progress=not args.no_progress)
    n_boot = args.n_boot if args.n_boot is not None else (20 if args.size == "tiny" else 200)
    report = make_report(out, out / "report", n_boot=n_boot, title="perflaw demo: synthetic data")
    if args.json:
        _print_json({"answers": report.payload, "sweep": summary.to_dict(),
                     "report": str(out / "report" / "report.html")})
        return 1 if summary.failed else 0
    print()
    print(report.summary)
    print(f"{summary.finished} runs trained ({summary.skipped} reused), {summary.failed} failed; "
          f"sweep machinery overhead {100 * summary.overhead:.2f}% of the training time")
    print(f"report: {out / 'report' / 'report.html'}")
    return 1 if summary.failed else 0


# ----------------------------------------------------------------- report
def _register_report(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="fit the laws to a results store and write the report folder",
        description="RESULTS is a sweep folder, its results.sqlite, or a CSV/JSONL/Parquet table of runs.",
    )
    parser.add_argument("results")
    parser.add_argument("--out", default=None, help="report folder (default: RESULTS/report or next to the table)")
    parser.add_argument("--metric", default="ndcg@10", help="accuracy metric to fit and recommend on (default: %(default)s)")
    parser.add_argument("--n-boot", type=int, default=DEFAULT_N_BOOT,
                        help="bootstrap refits for the intervals (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
    parser.add_argument("--reach", type=float, default=DEFAULT_REACH,
                        help="let the recommendation look up to this many times beyond the largest trained N and d "
                        "(default 1: inside the trained sizes)")
    parser.add_argument("--budget", type=float, default=None,
                        help="also show the best size under this parameter budget in the fit details")
    parser.add_argument("--json", action="store_true",
                        help="print the answers as JSON (what fit.json holds) instead of the summary")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from perflaw.report import make_report

    source = Path(args.results)
    if not source.exists():
        raise MissingFileError(f"no results at {str(source)!r}")
    default = source / "report" if source.is_dir() else source.parent / "report"
    report = make_report(source, Path(args.out) if args.out else default, metric=args.metric,
                         n_boot=args.n_boot, seed=args.seed, budget=args.budget, reach=args.reach)
    if args.json:
        json.dump(report.payload, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    sys.stdout.write(report.summary)
    print(f"report: {report.out_dir / 'report.html'}")
    return 0
