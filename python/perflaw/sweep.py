"""Sweeps: a spec → one training run per configuration → a results store the fitter reads.

A spec is the product of datasets (files or synth settings), data variants
(fractions of users, max lengths), a model grid (model × layers × dims) and
seeds, with one set of training settings. For each data variant the data
measure D′ is computed once with the Rust core; then every run trains and is
recorded in a SQLite store (one transaction per run), keyed by a hash of its
full configuration and the data's fingerprint. Re-running a spec skips the
finished runs, so a crash or ``kill -9`` loses at most the run in flight and
never duplicates one; a run that fails is recorded with its error and the
sweep goes on. Specs are checked completely before anything trains.

Where the runs train is an :class:`Executor`'s business: :class:`LocalExecutor`
(the default) trains them one by one in this process; others (e.g.
:class:`perflaw.cluster.RayExecutor`) train them elsewhere, several at once.
Whatever the executor, this process prepares the data variants and alone
writes the store.
"""

from __future__ import annotations

import abc
import hashlib
import itertools
import json
import math
import re
import sys
import time
import traceback
from collections import deque
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from perflaw.atomic import write_json_atomic
from perflaw.errors import MissingFileError, PerflawError, PerflawTypeError, require
from perflaw.progress import progress_bar
from perflaw.quality import check_m
from perflaw.sequences import Sequences, positive_int
from perflaw.store import STORE_NAME, ResultStore, StoreError, open_results  # noqa: F401 (re-exported)


# TrainConfig fields that the grid and the data variant set for each run.
_GRID_FIELDS = {"model", "layers", "dim", "max_len", "seed"}


# ===================================================================== spec
@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: a file (``path``) or a synthetic setting (``synth``).

    ``synth`` holds :class:`perflaw.synth.SynthConfig` fields, plus optionally
    ``level`` ("low", "medium", "high") to start from a preset.
    """

    name: str
    path: str | None = None
    format: str = "auto"
    synth: Mapping[str, Any] | None = None
    read_options: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        if self.synth is not None:
            return {"name": self.name, "synth": dict(self.synth)}
        return {"name": self.name, "path": self.path, "format": self.format, **dict(self.read_options)}


@dataclass(frozen=True)
class SweepSpec:
    """What to train: datasets × fractions × max_lens × models × layers × dims × seeds.

    ``train`` holds any other :class:`perflaw.TrainConfig` fields (loss,
    protocol, epochs, lr, device, ...), shared by every run.
    """

    name: str
    datasets: tuple[DatasetSpec, ...]
    layers: tuple[int, ...]
    dims: tuple[int, ...]
    models: tuple[str, ...] = ("llama",)
    fractions: tuple[float, ...] = (1.0,)
    max_lens: tuple[int, ...] = (50,)
    seeds: tuple[int, ...] = (0,)
    train: Mapping[str, Any] = field(default_factory=dict)
    quality_m: int = 2
    data_seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["datasets"] = [d.describe() for d in self.datasets]
        return out


@dataclass(frozen=True)
class DataVariant:
    dataset: DatasetSpec
    fraction: float
    max_len: int

    @property
    def label(self) -> str:
        return f"{self.dataset.name} frac={self.fraction:g} max_len={self.max_len}"


@dataclass(frozen=True)
class RunSpec:
    variant: DataVariant
    config: Any  # TrainConfig


_SPEC_KEYS = {"name", "datasets", "data", "grid", "seeds", "train", "quality"}
_DATA_KEYS = {"fractions", "max_len", "seed"}
_GRID_KEYS = {"model", "layers", "dim"}
_DATASET_KEYS = {"name", "path", "format", "synth", "user", "item", "timestamp", "sep"}
_QUALITY_KEYS = {"m"}


def load_spec(source: str | Path | Mapping[str, Any], base_dir: str | Path | None = None) -> SweepSpec:
    """A checked :class:`SweepSpec` from a TOML file or a dict of the same shape.

    Relative dataset paths are resolved against the TOML file's folder (or
    ``base_dir``). Unknown keys, empty or impossible grids, bad training
    settings and missing data files are all rejected here, before anything trains.

    Examples
    --------
    >>> spec = load_spec({"name": "tiny", "datasets": [{"name": "s", "synth": {"users": 50}}],
    ...                   "grid": {"layers": [1], "dim": [8, 16]}, "data": {"max_len": [10]},
    ...                   "train": {"epochs": 1, "device": "cpu"}})
    >>> len(expand(spec))
    2
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        raw = read_spec_file(path)
        base_dir = path.parent if base_dir is None else base_dir
    elif isinstance(source, Mapping):
        raw = dict(source)
    else:
        raise PerflawTypeError(f"a sweep spec is a TOML path or a dict, got {type(source).__name__}")
    spec = _parse_spec(raw, Path(base_dir) if base_dir is not None else Path.cwd())
    expand(spec)  # builds every TrainConfig: impossible settings fail now
    return spec


def _parse_spec(raw: dict[str, Any], base_dir: Path) -> SweepSpec:
    _no_unknown(raw, _SPEC_KEYS, "the sweep spec")
    data = _table(raw, "data", _DATA_KEYS)
    grid = _table(raw, "grid", _GRID_KEYS)
    quality = _table(raw, "quality", _QUALITY_KEYS)
    train = dict(_table(raw, "train", None))
    _check_train_keys(train)
    datasets = raw.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise PerflawError("the sweep spec needs a non-empty list of [[datasets]]")
    parsed = tuple(_parse_dataset(entry, i, base_dir) for i, entry in enumerate(datasets))
    names = [d.name for d in parsed]
    if len(set(names)) != len(names):
        raise PerflawError(f"dataset names must be unique, got {names}")
    fractions = _grid_values(data, "fractions", [1.0], float)
    for fraction in fractions:
        if not 0.0 < fraction <= 1.0:
            raise PerflawError(f"data.fractions must lie in (0, 1], got {fraction}")
    return SweepSpec(
        name=_spec_name(raw.get("name", "sweep")),
        datasets=parsed,
        layers=_grid_values(grid, "layers", None, int),
        dims=_grid_values(grid, "dim", None, int),
        models=_grid_values(grid, "model", ["llama"], str),
        fractions=fractions,
        max_lens=_grid_values(data, "max_len", [50], int),
        seeds=_grid_values(raw, "seeds", [0], int),
        train=train,
        quality_m=check_m(quality.get("m", 2)),
        data_seed=positive_int(data.get("seed", 0), "data.seed", allow_zero=True),
    )


def _spec_name(name: Any) -> str:
    """The spec's name, which names its folder under perflaw-out/: one plain path component."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise PerflawError(f"the sweep name must be letters, digits, '_', '-' or '.' (it names the output "
                           f"folder perflaw-out/NAME), got {name!r}")
    return name


def _no_unknown(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise PerflawError(f"unknown key(s) {unknown} in {where}; allowed: {sorted(allowed)}")


def _table(raw: Mapping[str, Any], key: str, allowed: set[str] | None) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise PerflawError(f"[{key}] must be a table, got {value!r}")
    if allowed is not None:
        _no_unknown(value, allowed, f"[{key}]")
    return value


def _grid_values(table: Mapping[str, Any], key: str, default: list | None, kind: type) -> tuple:
    if key not in table:
        if default is None:
            raise PerflawError(f"the sweep spec needs a non-empty list for {key!r}")
        return tuple(default)
    values = table[key]
    if not isinstance(values, list):
        values = [values]
    if not values:
        raise PerflawError(f"{key!r} is an empty list: the grid would have no runs")
    if len(set(values)) != len(values):
        raise PerflawError(f"{key!r} repeats a value: {values}")
    for value in values:
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise PerflawError(f"{key!r} must hold {kind.__name__} values, got {value!r}")
    return tuple(kind(v) for v in values)


def _check_train_keys(train: Mapping[str, Any]) -> None:
    from perflaw.training.config import TrainConfig

    allowed = {f.name for f in fields(TrainConfig)} - _GRID_FIELDS
    overlap = sorted(set(train) & _GRID_FIELDS)
    if overlap:
        raise PerflawError(f"[train] cannot set {overlap}: they come from [grid], [data] and seeds")
    _no_unknown(train, allowed, "[train]")


def _parse_dataset(entry: Any, index: int, base_dir: Path) -> DatasetSpec:
    if not isinstance(entry, Mapping):
        raise PerflawError(f"datasets[{index}] must be a table, got {entry!r}")
    _no_unknown(entry, _DATASET_KEYS, f"datasets[{index}]")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise PerflawError(f"datasets[{index}] needs a non-empty 'name'")
    has_path, has_synth = "path" in entry, "synth" in entry
    if has_path == has_synth:
        raise PerflawError(f"dataset {name!r} needs exactly one of 'path' or 'synth'")
    read_options = {k: entry[k] for k in ("user", "item", "timestamp", "sep") if k in entry}
    if has_synth:
        synth = dict(entry["synth"])
        synth_config(synth)  # validates now
        return DatasetSpec(name=name, synth=synth)
    path = Path(entry["path"]).expanduser()
    path = path if path.is_absolute() else (base_dir / path)
    if not path.is_file():
        raise MissingFileError(f"dataset {name!r}: data file {str(path)!r} does not exist")
    return DatasetSpec(name=name, path=str(path.resolve()), format=str(entry.get("format", "auto")),
                       read_options=read_options)


def synth_config(settings: Mapping[str, Any]):
    """The :class:`perflaw.synth.SynthConfig` of a dataset's ``synth`` table (``level`` starts from a preset)."""
    from perflaw import synth

    settings = dict(settings)
    level = settings.pop("level", None)
    try:
        return synth.quality_level(level, **settings) if level else synth.SynthConfig(**settings)
    except TypeError as exc:
        raise PerflawError(f"bad synth setting: {exc}") from None


def read_spec_file(path: Path) -> dict[str, Any]:
    """The raw table of a TOML spec file (checked by :func:`load_spec`)."""
    if not path.is_file():
        raise MissingFileError(f"sweep spec {str(path)!r} does not exist")
    toml = _toml_module()
    try:
        return toml.loads(path.read_text())
    except toml.TOMLDecodeError as exc:
        raise PerflawError(f"sweep spec {path} is not valid TOML: {exc}") from None


def parse_toml_value(text: str) -> Any:
    """A command-line value read as TOML (``0.01``, ``[8, 16]``, ``true``, ``"x"``), else as plain text."""
    toml = _toml_module()
    try:
        return toml.loads(f"value = {text}")["value"]
    except toml.TOMLDecodeError:
        return text


def _toml_module() -> Any:
    """The standard library's TOML reader (3.11+), or tomli, the same code for Python 3.10."""
    try:
        import tomllib  # novermin - guarded: tomli below on 3.10
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib


def expand(spec: SweepSpec) -> list[RunSpec]:
    """Every run of the spec, data variant by data variant."""
    from perflaw.training.config import TrainConfig

    runs = []
    for dataset, fraction, max_len in itertools.product(spec.datasets, spec.fractions, spec.max_lens):
        variant = DataVariant(dataset, fraction, max_len)
        for model, layers, dim, seed in itertools.product(spec.models, spec.layers, spec.dims, spec.seeds):
            try:
                config = TrainConfig(model=model, layers=layers, dim=dim, max_len=max_len, seed=seed, **spec.train)
            except (TypeError, ValueError) as exc:
                raise PerflawError(f"impossible run {model} layers={layers} dim={dim} max_len={max_len}: {exc}") from None
            runs.append(RunSpec(variant, config))
    return runs


# ============================================================== data side
@dataclass(frozen=True)
class PreparedData:
    """A data variant's sequences and its data measures."""

    sequences: Sequences
    quality: dict[str, Any]


def load_dataset(dataset: DatasetSpec) -> Sequences:
    if dataset.synth is not None:
        from perflaw import synth

        return synth.generate(synth_config(dataset.synth))
    from perflaw.ingest import read_sequences

    return read_sequences(dataset.path, format=dataset.format, **dict(dataset.read_options))


def prepare_variant(variant: DataVariant, sequences: Sequences, m: int, data_seed: int) -> PreparedData:
    """Subsample users, then measure the data as a model with this max_len sees it."""
    from perflaw.quality import data_quality

    if variant.fraction < 1.0:
        sequences = sequences.sample_users(variant.fraction, seed=data_seed)
    quality = data_quality(sequences, m=m, max_len=variant.max_len)
    return PreparedData(sequences, quality.to_dict())


def run_key(variant: DataVariant, config: Any, fingerprint: str) -> str:
    """Hash of everything that defines a run: training settings, data variant, data fingerprint."""
    payload = {
        "config": config.to_dict(),
        "dataset": variant.dataset.describe(),
        "fraction": variant.fraction,
        "data_fingerprint": fingerprint,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


# ================================================================= runner
@dataclass
class SweepSummary:
    """What a call of :func:`run_sweep` did."""

    out_dir: Path
    total: int
    skipped: int = 0
    finished: int = 0
    failed: int = 0
    train_s: float = 0.0  # inside training runs
    data_s: float = 0.0  # loading data variants and measuring D′
    wall_s: float = 0.0
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-ready values."""
        overhead = self.overhead
        return {**asdict(self), "out_dir": str(self.out_dir), "overhead": None if math.isnan(overhead) else overhead}

    def add(self, outcome: "RunOutcome") -> None:
        self.train_s += outcome.seconds
        if outcome.status == "ok":
            self.finished += 1
        else:
            self.failed += 1

    @property
    def overhead(self) -> float:
        """Time of the sweep machinery (neither training nor data measurement), relative to training time."""
        machinery = self.wall_s - self.train_s - self.data_s
        return machinery / self.train_s if self.train_s > 0 else math.nan


TrainFn = Callable[..., Any]


@dataclass(frozen=True)
class RunOutcome:
    """One run's row for the store, its status ("ok" or "failed") and the seconds it took."""

    row: dict[str, Any]
    status: str
    seconds: float


@dataclass(frozen=True, eq=False)  # compared and hashed by identity
class RunJob:
    """One pending run, as :func:`run_sweep` hands it to an :class:`Executor`.

    Attributes
    ----------
    run : RunSpec
        The data variant and training configuration.
    key : str
        The run's key in the store (:func:`run_key`).
    data : PreparedData
        The variant's sequences and data measures; every job of one variant
        shares this object, so an executor can ship the sequences once.
    checkpoint_root : Path
        The run checkpoints under ``checkpoint_root / key``.
    train_fn : callable, optional
        Replaces :func:`perflaw.train`.
    """

    run: RunSpec
    key: str
    data: PreparedData
    checkpoint_root: Path
    train_fn: TrainFn | None = None

    def execute(self) -> RunOutcome:
        """Trains the run here (:func:`execute_run`); a run that raises becomes a failed outcome."""
        return execute_run(self.run, self.data.sequences, self.data.quality, self.key, self.train_fn,
                           self.checkpoint_root)

    def failure(self, error: str, seconds: float = 0.0) -> RunOutcome:
        """A failed outcome for a run that never returned one (e.g. its worker process died)."""
        row = {**_variant_columns(self.run.variant, self.data.quality, self.run.config), "error": error}
        return RunOutcome(row, "failed", seconds)


class Executor(abc.ABC):
    """Where a sweep's runs train; :func:`run_sweep` alone writes the store.

    :func:`run_sweep` calls, in this order: :meth:`start` once with every run
    of the spec, before anything is written; :meth:`submit` for each pending
    run, data variant by data variant, each submit followed by
    ``finished(block=False)``; ``finished(block=True)`` once every run is
    submitted; and :meth:`close`, always, also after an error or Ctrl-C.
    Each outcome is recorded as soon as ``finished`` yields it, so a driver
    that dies loses only the runs in flight.

    Examples
    --------
    An executor that trains the runs in reverse order once all are submitted:

    >>> class Reversed(Executor):
    ...     def __init__(self):
    ...         self.jobs = []
    ...     def submit(self, job):
    ...         self.jobs.append(job)
    ...     def finished(self, block):
    ...         while block and self.jobs:
    ...             job = self.jobs.pop()
    ...             yield job, job.execute()
    >>> run_sweep(spec, "out/sweep", executor=Reversed())  # doctest: +SKIP
    """

    #: Shown in the progress bar ("sweep NAME on LABEL"); empty for this process.
    label: str = ""

    def start(self, runs: Sequence[RunSpec]) -> None:  # an optional hook
        """Gets ready for these runs (all of the spec's, finished ones included): connect, check resources.

        Raising here stops the sweep before anything is written or trained.
        """

    @abc.abstractmethod
    def submit(self, job: RunJob) -> None:
        """Starts (or queues) one run."""

    @abc.abstractmethod
    def finished(self, block: bool) -> Iterator[tuple[RunJob, RunOutcome]]:
        """Yields ``(job, outcome)`` for submitted runs that have finished, each once.

        With ``block=False`` only those finished already; with ``block=True``
        every run still in flight, waiting for each. A run that fails yields a
        failed outcome (:meth:`RunJob.failure`), never an exception.
        """

    def close(self) -> None:  # an optional hook
        """Stops whatever is still in flight and releases the executor's resources."""


class LocalExecutor(Executor):
    """Trains each run in this process as it is submitted, one at a time (the default).

    Examples
    --------
    >>> run_sweep(spec, "out/sweep", executor=LocalExecutor())  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._done: deque[tuple[RunJob, RunOutcome]] = deque()

    def start(self, runs: Sequence[RunSpec]) -> None:
        """Every device the runs ask for must be here: one error before anything trains."""
        check_devices(sorted({run.config.device for run in runs}))

    def submit(self, job: RunJob) -> None:
        self._done.append((job, job.execute()))

    def finished(self, block: bool) -> Iterator[tuple[RunJob, RunOutcome]]:
        while self._done:
            yield self._done.popleft()


def check_devices(devices: Iterable[str]) -> None:
    """Raises once, naming the device, when one of ``devices`` is not on this machine.

    Examples
    --------
    >>> check_devices(["cpu", "auto"])
    """
    needed = [d for d in devices if d not in ("cpu", "auto")]
    if needed:
        require("torch", f"device {needed[0]!r}", "train")
        from perflaw.training.loop import resolve_device

        for device in needed:
            resolve_device(device)


def check_table_sizes(runs: Sequence[RunSpec], data: PreparedData) -> None:
    """Each run's settings against its data variant (item table, sampled negatives), before any trains."""
    for run in runs:
        try:
            run.config.table_size(data.sequences)
        except PerflawError as error:
            raise PerflawError(f"{run.variant.label}: {error}") from None


def run_sweep(
    spec: SweepSpec,
    out_dir: str | Path,
    progress: bool = True,
    train_fn: TrainFn | None = None,
    log: Callable[[str], None] | None = None,
    executor: Executor | None = None,
) -> SweepSummary:
    """Runs every unfinished run of ``spec``, recording each in ``out_dir/results.sqlite``.

    Parameters
    ----------
    spec : SweepSpec
        From :func:`load_spec` or a preset.
    out_dir : path
        Holds the store, ``spec.json`` and per-run checkpoints (so an
        interrupted run resumes from its last epoch).
    progress : bool
        One bar with an ETA over the whole sweep, and a line per finished run.
    train_fn : callable, optional
        Replaces :func:`perflaw.train` (same signature), e.g. to run elsewhere.
    log : callable, optional
        Receives the line of each finished run (default: printed above the bar).
    executor : Executor, optional
        Where the runs train: :class:`LocalExecutor` (default), or e.g.
        :class:`perflaw.cluster.RayExecutor`. The data variants are prepared
        and every outcome is recorded here, whatever the executor; it is
        closed when the sweep ends.

    Returns
    -------
    SweepSummary

    Examples
    --------
    >>> spec = load_spec("sweep.toml")  # doctest: +SKIP
    >>> run_sweep(spec, "out/sweep").finished  # doctest: +SKIP
    24
    """
    from tqdm import tqdm  # tqdm.write only (see perflaw.progress)

    started = time.perf_counter()
    executor = executor if executor is not None else LocalExecutor()
    runs = expand(spec)
    try:
        executor.start(runs)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "spec.json", spec.to_dict())
        store = ResultStore(out_dir / STORE_NAME)
        summary = SweepSummary(out_dir=out_dir, total=len(runs))
        say = log or (lambda line: tqdm.write(line, file=sys.stderr))
        where = f" on {executor.label}" if executor.label else ""
        bar = progress_bar(progress, total=len(runs), desc=f"sweep {spec.name}{where}", unit="run")

        def record(done: Iterable[tuple[RunJob, RunOutcome]]) -> None:
            for job, outcome in done:
                store.record(job.key, outcome.row, outcome.status)
                summary.add(outcome)
                bar.update(1)
                say(_run_line(job.run.variant, job.run.config, outcome.row, outcome.status))

        try:
            for variant, variant_runs in itertools.groupby(runs, key=lambda r: r.variant):
                data_started = time.perf_counter()
                data = prepare_variant(variant, _cached_dataset(variant.dataset), spec.quality_m, spec.data_seed)
                summary.data_s += time.perf_counter() - data_started
                summary.variants[variant.label] = data.quality
                variant_runs = list(variant_runs)
                check_table_sizes(variant_runs, data)
                for run, key in pending_runs(variant_runs, data, store, summary, bar):
                    executor.submit(RunJob(run, key, data, out_dir / "checkpoints", train_fn))
                    record(executor.finished(block=False))
            record(executor.finished(block=True))
        finally:
            bar.close()
            store.close()
    finally:
        executor.close()
    summary.wall_s = time.perf_counter() - started
    return summary


def pending_runs(runs, data: PreparedData, store: "ResultStore", summary: "SweepSummary", bar) -> list:
    """(run, key) for the runs of one data variant that are not finished yet; counts the others as skipped."""
    statuses = store.statuses()
    pending = []
    for run in runs:
        key = run_key(run.variant, run.config, data.quality["fingerprint"])
        if statuses.get(key) == "ok":
            summary.skipped += 1
            bar.update(1)
        else:
            pending.append((run, key))
    return pending


def execute_run(run: RunSpec, sequences: Sequences, quality: Mapping[str, Any], key: str,
                train_fn: TrainFn | None, checkpoint_root: Path) -> RunOutcome:
    """Trains one run and builds its row; an exception becomes a failed row, never a crash.

    Pure apart from the checkpoint folder, so it can run in another process (e.g. a Ray task).
    """
    train_fn = train_fn or _default_train
    base = _variant_columns(run.variant, quality, run.config)
    if hasattr(train_fn, "for_run"):  # a train_fn that wants to know its run (perflaw.tracking.TrackedTrain)
        train_fn = train_fn.for_run(key, base)
    started = time.perf_counter()
    try:
        result = train_fn(sequences, run.config, progress=False, checkpoint_dir=Path(checkpoint_root) / key)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a failing run is recorded and the sweep goes on
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        row = {**base, "error": error, "traceback": traceback.format_exc(limit=8)}
        return RunOutcome(row, "failed", time.perf_counter() - started)
    return RunOutcome({**base, **result.to_dict()}, "ok", time.perf_counter() - started)


def _variant_columns(variant: DataVariant, quality: Mapping[str, Any], config: Any) -> dict[str, Any]:
    from perflaw import __version__

    return {
        "dataset": variant.dataset.name,
        "fraction": variant.fraction,
        "max_len": variant.max_len,
        "model": config.model,
        "layers": config.layers,
        "dim": config.dim,
        "seed": config.seed,
        "loss": config.loss,
        "protocol": config.protocol,
        "d_prime": quality["d_prime"],
        "d_prime_pooled": quality["d_prime_pooled"],
        "apen_abs_mean": quality["apen_abs_mean"],
        "block_entropy": quality["block_entropy"],
        "data_tokens": quality["tokens"],
        "data_users": quality["users"],
        "data_fingerprint": quality["fingerprint"],
        "quality_m": quality["m"],
        "perflaw_version": __version__,
    }


def _run_line(variant: DataVariant, config: Any, row: Mapping[str, Any], status: str) -> str:
    head = f"{variant.label} {config.model} N={config.layers} d={config.dim} seed={config.seed}"
    if status == "failed":
        return f"{head}: FAILED {row.get('error', '')}"
    return f"{head}: ndcg@10={row.get('ndcg@10', float('nan')):.4f} hr@10={row.get('hr@10', float('nan')):.4f} " \
           f"({row.get('wall_s', float('nan')):.1f}s, best epoch {row.get('best_epoch')})"


_DATASET_CACHE: dict[str, Sequences] = {}


def _cached_dataset(dataset: DatasetSpec) -> Sequences:
    key = json.dumps(dataset.describe(), sort_keys=True, default=str)
    if key not in _DATASET_CACHE:
        _DATASET_CACHE.clear()  # keep one dataset in memory at a time
        _DATASET_CACHE[key] = load_dataset(dataset)
    return _DATASET_CACHE[key]


def _default_train(sequences, config, progress, checkpoint_dir):
    from perflaw.training import train

    return train(sequences, config, progress=progress, checkpoint_dir=checkpoint_dir)


# ================================================================ presets
PAPER_LAYERS = [4, 8, 12, 16, 24, 32]
PAPER_DIMS = [25, 50, 75, 100]


def preset(name: str, datasets: Iterable[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """A spec dict for ``paper``, ``full`` or ``cpu-small``; ``datasets`` replaces the default data.

    * ``paper``: the paper's grid, N ∈ {4, 8, 12, 16, 24, 32} × d ∈ {25, 50, 75, 100},
      max_len ∈ {50, 100, 200}, BCE loss, evaluation against 2,499 sampled negatives;
    * ``full``: the same grid with CE loss and full-ranking evaluation;
    * ``cpu-small``: a grid that trains on a 2-core CPU in minutes, on built-in synthetic data.

    Examples
    --------
    >>> len(expand(load_spec(preset("paper", [{"name": "s", "synth": {"users": 50}}]))))
    72
    """
    synthetic = [{"name": level, "synth": {"level": level, "users": 3000, "items": 500, "seed": 1}}
                 for level in ("low", "medium", "high")]
    presets = {
        "paper": {
            "grid": {"model": ["llama"], "layers": PAPER_LAYERS, "dim": PAPER_DIMS},
            "data": {"max_len": [50, 100, 200]},
            "train": {"loss": "bce", "protocol": "sampled", "eval_negatives": 2499, "epochs": 200,
                      "batch_size": 256, "lr": 1e-3, "patience": 10},
        },
        "full": {
            "grid": {"model": ["llama"], "layers": PAPER_LAYERS, "dim": PAPER_DIMS},
            "data": {"max_len": [50, 100, 200]},
            "train": {"loss": "ce", "protocol": "full", "epochs": 200, "batch_size": 256, "lr": 1e-3,
                      "patience": 10},
        },
        "cpu-small": {
            "grid": {"model": ["llama"], "layers": [1, 2, 4], "dim": [8, 16, 32]},
            "data": {"max_len": [20]},
            "train": {"loss": "ce", "protocol": "full", "epochs": 15, "batch_size": 256, "lr": 3e-3,
                      "patience": 3, "device": "cpu", "warmup_steps": 20},
        },
    }
    if name not in presets:
        raise PerflawError(f"unknown preset {name!r}; choose one of {sorted(presets)}")
    spec = {"name": name, **presets[name]}
    spec["datasets"] = [dict(d) for d in datasets] if datasets is not None else synthetic
    return spec


def plan(spec: SweepSpec, out_dir: str | Path) -> list[dict[str, Any]]:
    """What :func:`run_sweep` would train, without training: one row per run.

    Each row has the data variant, model, layers, dim, seed, the parameter
    count (with and without the embedding table) and ``status``: ``done``
    (finished in ``out_dir``'s store, skipped on a run), ``failed`` (will be
    retried) or ``pending``. Nothing is written.

    Examples
    --------
    >>> rows = plan(load_spec(spec_dict), "perflaw-out/x")  # doctest: +SKIP
    >>> rows[0]["status"]  # doctest: +SKIP
    'pending'
    """
    from perflaw.sizing import param_count

    store_path = Path(out_dir) / STORE_NAME
    statuses = ResultStore(store_path).statuses() if store_path.is_file() else {}
    rows = []
    for variant, runs in itertools.groupby(expand(spec), key=lambda r: r.variant):
        sequences = _cached_dataset(variant.dataset)
        if variant.fraction < 1.0:
            sequences = sequences.sample_users(variant.fraction, seed=spec.data_seed)
        fingerprint = sequences.fingerprint()
        for run in runs:
            config = run.config
            n_items = config.table_size(sequences)
            size = {name: param_count(config.model, config.layers, config.dim, n_items, config.max_len,
                                      config.attention, include_embedding=name == "params")
                    for name in ("params", "params_non_embedding")}
            status = statuses.get(run_key(variant, config, fingerprint), "pending")
            rows.append({"variant": variant.label, "model": config.model, "layers": config.layers,
                         "dim": config.dim, "seed": config.seed, **size,
                         "status": "done" if status == "ok" else status})
    return rows


def with_settings(spec: SweepSpec, **train: Any) -> SweepSpec:
    """The spec with some training settings replaced (e.g. ``device``)."""
    return replace(spec, train={**spec.train, **train})
