"""Experiment tracking, optional: log each training run to MLflow or to TensorBoard event files.

A :class:`Tracker` is where runs are logged (:class:`MlflowTracker`,
:class:`TensorBoardTracker`); :class:`TrackedTrain` is a drop-in for
:func:`perflaw.train` that logs the run it trains: the settings when it
starts, every epoch's training and validation metrics as it ends (through
the trainer's ``callback``), and the final result. ``perflaw train --track``
and ``perflaw sweep --track`` use it; a sweep passes it to
:func:`perflaw.sweep.run_sweep` as ``train_fn``, so only runs that really
train are logged (finished ones are skipped before any training starts).

Tracking never costs a run: the store is checked once before anything
trains (a missing package or an unusable store is an error then); a tracker
error after that is reported once on stderr, tracking stops for the rest of
the process, and training goes on. The run's own outputs (``result.json``,
the sweep's SQLite store) stay the record that resuming relies on.

A run interrupted and resumed from its checkpoint goes on logging into the
same MLflow run or TensorBoard folder: which one is kept in a small file
beside the checkpoints (``tracking-mlflow.json``, ``tracking-tensorboard.json``).

Metric names are the same for both backends: ``train/loss``, ``train/lr``,
``train/tokens_per_s``, ``train/epoch_s`` and ``valid/<metric>`` per epoch
(step = epoch); ``test/<metric>``, ``best_valid/<metric>`` and ``run/<number>``
(wall_s, params, best_epoch, ...) once at the end (step = best epoch).
``@`` becomes ``_at_`` (``hr@10`` -> ``hr_at_10``), as MLflow does not allow it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from perflaw.atomic import json_ready, write_json_atomic
from perflaw.errors import MissingDependency, PerflawError, require

if TYPE_CHECKING:
    from perflaw.training.result import TrainResult

KINDS = ("mlflow", "tensorboard")
DEFAULT_MLFLOW_DIR = "mlruns"
DEFAULT_TENSORBOARD_DIR = "runs"

# Per-epoch log entries (see perflaw.training.loop) and their names.
EPOCH_SCALARS = {"loss": "train/loss", "lr": "train/lr", "tokens_per_s": "train/tokens_per_s",
                 "train_s": "train/epoch_s"}
# Numbers of TrainResult.to_dict() logged once at the end as run/<name>.
RESULT_NUMBERS = ("params", "params_non_embedding", "heads", "n_items", "n_users", "tokens", "train_tokens",
                  "eval_users", "wall_s", "train_s", "tokens_per_s", "eval_users_per_s", "peak_memory_bytes",
                  "best_epoch", "epochs_run")
# Strings of TrainResult.to_dict() logged as tags perflaw.<name> (MLflow) at the end.
RESULT_TAGS = ("device", "precision", "data_fingerprint", "perflaw_version")


def metric_name(split: str, name: str) -> str:
    """The logged name of a metric: MLflow allows no ``@``.

    Examples
    --------
    >>> metric_name("valid", "ndcg@10")
    'valid/ndcg_at_10'
    """
    return f"{split}/{name.replace('@', '_at_')}"


def epoch_scalars(log: Mapping[str, Any]) -> dict[str, float]:
    """The scalars of one epoch's log entry (loss, learning rate, speed, validation metrics).

    Examples
    --------
    >>> epoch_scalars({"epoch": 1, "loss": 2.5, "lr": 1e-3, "valid": {"hr@10": 0.25}})
    {'train/loss': 2.5, 'train/lr': 0.001, 'valid/hr_at_10': 0.25}
    """
    out = {tag: float(log[key]) for key, tag in EPOCH_SCALARS.items() if _is_number(log.get(key))}
    for name, value in (log.get("valid") or {}).items():
        if _is_number(value):
            out[metric_name("valid", name)] = float(value)
    return out


def result_scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """The scalars of a finished run (``TrainResult.to_dict()``): test metrics, best validation, sizes, times.

    Examples
    --------
    >>> result_scalars({"valid_metrics": {"mrr": 0.5}, "mrr": 0.4, "wall_s": 3.0, "model": "llama"})
    {'test/mrr': 0.4, 'best_valid/mrr': 0.5, 'run/wall_s': 3.0}
    """
    valid = row.get("valid_metrics") or {}
    out = {metric_name("test", name): float(row[name]) for name in valid if _is_number(row.get(name))}
    out.update({metric_name("best_valid", name): float(value) for name, value in valid.items() if _is_number(value)})
    out.update({f"run/{name}": float(row[name]) for name in RESULT_NUMBERS if _is_number(row.get(name))})
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# =================================================================== trackers
class Tracker:
    """Where runs are logged. Subclasses open runs; this class keeps the failure policy.

    After the first error a tracker reports it once on stderr and does
    nothing more in this process: tracking never stops training.
    """

    kind = ""

    def __init__(self) -> None:
        self.broken = False

    def check(self) -> None:
        """Raises :class:`PerflawError` (or :class:`MissingDependency`) when runs cannot be logged."""

    def open_run(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                 state_dir: Path | None) -> "RunLog":
        """A new run (or the one a resumed training logged into before), as a :class:`RunLog`."""
        raise NotImplementedError

    def start_run(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                  state_dir: Path | None) -> "RunLog":
        """:meth:`open_run`, or a log that does nothing when the tracker fails."""
        run = self.guard(self.open_run, name, params, tags, state_dir)
        return run if run is not None else RunLog(self, None, {})

    def guard(self, action: Any, *args: Any) -> Any:
        """``action(*args)``; an error is reported once and turns this tracker off (returns None)."""
        if self.broken:
            return None
        try:
            return action(*args)
        except Exception as exc:  # noqa: BLE001 - tracking must never fail a run
            self.broken = True
            text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            print(f"perflaw: warning: {self.kind} tracking failed ({type(exc).__name__}: {text}); "
                  f"training goes on, tracking is off for the rest of this process", file=sys.stderr, flush=True)
            return None

    def __getstate__(self) -> dict[str, Any]:  # picklable (a Ray worker unpickles it): no open handles
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class RunLog:
    """One run being logged: call :meth:`epoch` after each epoch, then :meth:`finish` or :meth:`end`.

    The base class logs nothing (a tracker that failed to open the run hands
    out one); subclasses write the scalars.
    """

    def __init__(self, tracker: Tracker, state_path: Path | None, state: dict[str, Any]) -> None:
        self.tracker = tracker
        self.state_path = state_path
        self.state = state
        self.logged = int(state.get("epoch", 0))
        self.active = state_path is not None or bool(state)

    # -- what subclasses write
    def write_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        """Writes scalars at one step."""

    def write_result(self, row: Mapping[str, Any], step: int) -> None:
        """Writes the final result and closes the run as finished."""

    def write_end(self, status: str, error: str) -> None:
        """Closes the run as failed or killed."""

    # -- the trainer's side
    def epoch(self, log: Mapping[str, Any]) -> None:
        """Logs one epoch's entry (the trainer's ``callback``); epochs logged before are skipped."""
        if not self.active or self.tracker.broken or int(log["epoch"]) <= self.logged:
            return
        self.tracker.guard(self.write_scalars, epoch_scalars(log), int(log["epoch"]))
        self.logged = int(log["epoch"])
        self.save(epoch=self.logged)

    def finish(self, result: "TrainResult") -> None:
        """Logs the epochs not logged yet (e.g. trained before tracking was on), then the result."""
        if not self.active:
            return
        row = result.to_dict()
        for entry in row.get("history", []):
            if int(entry.get("epoch", 0)) > self.logged:
                self.tracker.guard(self.write_scalars, epoch_scalars(entry), int(entry["epoch"]))
        self.logged = max([self.logged, *[int(e.get("epoch", 0)) for e in row.get("history", [])]])
        self.tracker.guard(self.write_result, row, int(row.get("best_epoch") or 0))
        self.save(epoch=self.logged, finished=True)

    def end(self, status: str, error: str) -> None:
        """Closes the run as ``FAILED`` or ``KILLED``, with the error."""
        if self.active:
            self.tracker.guard(self.write_end, status, error)

    def save(self, **changes: Any) -> None:
        """Updates the state file beside the checkpoints."""
        self.state.update(changes)
        if self.state_path is not None:
            self.tracker.guard(write_json_atomic, self.state_path, self.state)


def read_state(state_dir: Path | None, kind: str) -> tuple[Path | None, dict[str, Any]]:
    """The state file of ``kind`` in ``state_dir`` and what it holds ({} when none or unreadable)."""
    if state_dir is None:
        return None, {}
    path = Path(state_dir) / f"tracking-{kind}.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return path, {}
    return path, state if isinstance(state, dict) else {}


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


# ---------------------------------------------------------------------- MLflow
def mlflow_uri(uri: str | None = None) -> str:
    """The tracking URI: ``uri``, else ``$MLFLOW_TRACKING_URI``, else ``./mlruns``; a folder becomes a file URI.

    Examples
    --------
    >>> mlflow_uri("http://localhost:5000")
    'http://localhost:5000'
    >>> mlflow_uri("/tmp/mlruns")
    'file:///tmp/mlruns'
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_MLFLOW_DIR
    if uri == "databricks" or re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", uri):
        return uri
    return Path(uri).expanduser().resolve().as_uri()


class MlflowTracker(Tracker):
    """Logs each run as an MLflow run, in experiment ``experiment`` of the store at ``uri``.

    Parameters
    ----------
    uri : str, optional
        Any MLflow tracking URI (``http://host:5000``, ``sqlite:///mlflow.db``,
        ``databricks``) or a folder, used as a local file store; default
        ``$MLFLOW_TRACKING_URI``, else ``./mlruns``. For a local file store
        perflaw sets ``MLFLOW_ALLOW_FILE_STORE=true`` (unless set), as MLflow 3
        otherwise refuses it.
    experiment : str
        The experiment's name (created when missing); ``$MLFLOW_EXPERIMENT_NAME`` overrides it.

    Examples
    --------
    >>> tracker = MlflowTracker("/tmp/mlruns", experiment="perflaw-train")
    >>> tracker.uri, tracker.experiment
    ('file:///tmp/mlruns', 'perflaw-train')
    """

    kind = "mlflow"
    _client: Any = None  # made on first use, in the process that logs

    def __init__(self, uri: str | None = None, experiment: str = "perflaw") -> None:
        super().__init__()
        self.uri = mlflow_uri(uri)
        self.experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or experiment
        self.experiment_id: str | None = None

    def client(self) -> Any:
        """The MLflow client, with the experiment found or created."""
        if self._client is None:
            require("mlflow", "--track mlflow", "mlflow")
            if self.uri.startswith("file:"):
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=self.uri)
            found = client.get_experiment_by_name(self.experiment)
            if found is None:
                try:
                    self.experiment_id = client.create_experiment(self.experiment)
                except Exception:  # another process created it first
                    found = client.get_experiment_by_name(self.experiment)
                    if found is None:
                        raise
            if found is not None:
                self.experiment_id = found.experiment_id
            self._client = client
        return self._client

    def check(self) -> None:
        try:
            self.client()
        except MissingDependency:
            raise
        except Exception as exc:  # noqa: BLE001 - any store problem, before anything trains
            raise PerflawError(f"cannot log to the MLflow tracking store {self.uri}: {exc}") from None

    def open_run(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                 state_dir: Path | None) -> "RunLog":
        from mlflow.entities import Param

        client = self.client()
        path, state = read_state(state_dir, self.kind)
        if state.get("tracking_uri") == self.uri and state.get("experiment_id") == self.experiment_id:
            try:
                client.get_run(state["run_id"])
            except Exception:  # noqa: BLE001 - deleted: start a new one
                state = {}
            else:
                if state.get("finished"):
                    return RunLog(self, None, {})  # logged completely before
                client.update_run(state["run_id"], status="RUNNING")
                return MlflowRunLog(self, path, state)
        run = client.create_run(self.experiment_id, run_name=name, tags=dict(tags))
        state = {"tracking_uri": self.uri, "experiment_id": self.experiment_id, "run_id": run.info.run_id,
                 "epoch": 0}
        items = [Param(str(k), _param_text(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow's limit per batch
            client.log_batch(run.info.run_id, params=items[start:start + 100])
        log = MlflowRunLog(self, path, state)
        log.save()
        return log


class MlflowRunLog(RunLog):
    """An open MLflow run."""

    def write_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in scalars.items()]
        self.tracker.client().log_batch(self.state["run_id"], metrics=metrics)

    def write_result(self, row: Mapping[str, Any], step: int) -> None:
        from mlflow.entities import RunTag

        client, run_id = self.tracker.client(), self.state["run_id"]
        self.write_scalars(result_scalars(row), step)
        tags = [RunTag(f"perflaw.{name}", str(row[name])) for name in RESULT_TAGS if row.get(name) is not None]
        client.log_batch(run_id, tags=tags)
        client.log_dict(run_id, json_ready(dict(row)), "result.json")
        client.set_terminated(run_id, status="FINISHED")

    def write_end(self, status: str, error: str) -> None:
        client, run_id = self.tracker.client(), self.state["run_id"]
        client.set_tag(run_id, "perflaw.error", error[:5000])
        client.set_terminated(run_id, status=status)


# ----------------------------------------------------------------- TensorBoard
def _folder_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", name).strip("_.") or "run"


class TensorBoardTracker(Tracker):
    """Writes each run's scalars as TensorBoard event files in ``directory/experiment/<run name>``.

    Parameters
    ----------
    directory : path, optional
        The log folder (``tensorboard --logdir DIRECTORY``); default ``./runs``.
    experiment : str
        A sub-folder grouping the runs (e.g. the sweep's name).

    Examples
    --------
    >>> tracker = TensorBoardTracker("/tmp/runs", experiment="perflaw-train")
    >>> tracker.root.as_posix()
    '/tmp/runs/perflaw-train'
    """

    kind = "tensorboard"

    def __init__(self, directory: str | os.PathLike | None = None, experiment: str = "perflaw") -> None:
        super().__init__()
        self.root = Path(directory or DEFAULT_TENSORBOARD_DIR).expanduser().resolve() / _folder_name(experiment)

    def check(self) -> None:
        require("tensorboard", "--track tensorboard", "tensorboard")
        require("torch", "--track tensorboard", "train")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PerflawError(f"cannot write TensorBoard logs in {self.root}: {exc.strerror or exc}") from None

    def open_run(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str],
                 state_dir: Path | None) -> "RunLog":
        from torch.utils.tensorboard import SummaryWriter

        path, state = read_state(state_dir, self.kind)
        resumed = (state.get("root") == str(self.root) and bool(state.get("log_dir"))
                   and Path(state["log_dir"]).is_dir())
        if resumed and state.get("finished"):
            return RunLog(self, None, {})
        if not resumed:
            state = {"root": str(self.root), "log_dir": str(self._new_folder(name)), "epoch": 0}
        log = TensorBoardRunLog(self, path, state)
        log.writer = SummaryWriter(log_dir=state["log_dir"])
        if not resumed:
            settings = {**{k: _param_text(v) for k, v in params.items()}, **dict(tags)}
            log.writer.add_text("config", "\n".join(f"    {k} = {v}" for k, v in settings.items()), 0)
            log.writer.flush()
            log.save()
        return log

    def _new_folder(self, name: str) -> Path:
        """``root/name``, or ``name-2``, ``name-3``, ... when taken."""
        base = _folder_name(name)
        self.root.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            folder = self.root / (base if n == 1 else f"{base}-{n}")
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            return folder
        raise PerflawError(f"too many TensorBoard runs named {base!r} in {self.root}")


class TensorBoardRunLog(RunLog):
    """An open TensorBoard event file."""

    writer: Any = None

    def write_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def write_result(self, row: Mapping[str, Any], step: int) -> None:
        self.write_scalars(result_scalars(row), step)
        self.writer.close()

    def write_end(self, status: str, error: str) -> None:
        self.writer.add_text("error", f"{status}: {error}", self.logged)
        self.writer.close()


# ================================================================ training
@dataclass(frozen=True)
class TrackedTrain:
    """:func:`perflaw.train` that logs the run to ``tracker``; usable as a sweep's ``train_fn``.

    Parameters
    ----------
    tracker : Tracker
        Where to log (checked before use: :func:`make_tracker`).
    name : str, optional
        The run's name (default: "MODEL-LAYERSxDIM").
    params : mapping
        Logged with the ``TrainConfig`` fields (e.g. the data's path and fingerprint).
    tags : mapping
        Tags of the run (MLflow) or lines of its config text (TensorBoard).

    Examples
    --------
    >>> from perflaw import Sequences, TrainConfig
    >>> seqs = Sequences.from_lists([[1, 2, 3, 4, 5]] * 8)
    >>> train = TrackedTrain(make_tracker("tensorboard", directory="runs", experiment="demo"))  # doctest: +SKIP
    >>> result = train(seqs, TrainConfig(layers=1, dim=8, max_len=4, epochs=2, device="cpu"),
    ...                progress=False)  # doctest: +SKIP
    """

    tracker: Tracker
    name: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, sequences: Any, config: Any, progress: bool = True,
                 checkpoint_dir: str | os.PathLike | None = None) -> "TrainResult":
        from perflaw.training import train

        name = self.name or f"{config.model}-{config.layers}x{config.dim}"
        params = {**config.to_dict(), **dict(self.params)}
        state_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
        run = self.tracker.start_run(name, params, self.tags, state_dir)
        try:
            result = train(sequences, config, progress=progress, checkpoint_dir=checkpoint_dir, callback=run.epoch)
        except KeyboardInterrupt:
            run.end("KILLED", "interrupted")
            raise
        except Exception as exc:
            run.end("FAILED", f"{type(exc).__name__}: {exc}")
            raise
        run.finish(result)
        return result

    def for_run(self, key: str, columns: Mapping[str, Any]) -> "TrackedTrain":
        """This train function for one run of a sweep (:func:`perflaw.sweep.execute_run` calls it).

        ``columns`` are the run's data-variant columns (dataset, fraction,
        data fingerprint, D′, ...): they are logged as params, ``key`` as the
        tag ``perflaw.run_key``.

        Examples
        --------
        >>> train = TrackedTrain(TensorBoardTracker("/tmp/runs"))
        >>> one = train.for_run("ab12", {"dataset": "s", "fraction": 1.0, "max_len": 8, "model": "llama",
        ...                              "layers": 1, "dim": 4, "seed": 0})
        >>> one.name, one.tags["perflaw.run_key"]
        ('s frac=1 max_len=8 llama 1x4 seed=0', 'ab12')
        """
        c = columns
        name = (f"{c.get('dataset')} frac={c.get('fraction', 1.0):g} max_len={c.get('max_len')} "
                f"{c.get('model')} {c.get('layers')}x{c.get('dim')} seed={c.get('seed')}")
        return replace(self, name=name, params={**self.params, **dict(columns)},
                       tags={**self.tags, "perflaw.run_key": key})


def make_tracker(kind: str | None, uri: str | None = None, directory: str | os.PathLike | None = None,
                 experiment: str = "perflaw") -> Tracker | None:
    """The checked tracker for ``--track KIND`` (None for none): errors come now, before anything trains.

    Parameters
    ----------
    kind : {"mlflow", "tensorboard"} or None
    uri : str, optional
        MLflow only: the tracking URI (:class:`MlflowTracker`).
    directory : path, optional
        TensorBoard only: the log folder (:class:`TensorBoardTracker`).
    experiment : str
        The MLflow experiment, or the sub-folder of the TensorBoard log folder.

    Examples
    --------
    >>> make_tracker(None) is None
    True
    >>> make_tracker("tensorboard", directory="runs", experiment="x").kind  # doctest: +SKIP
    'tensorboard'
    """
    if kind is None:
        if uri is not None or directory is not None:
            raise PerflawError("--track-uri and --track-dir need --track mlflow or --track tensorboard")
        return None
    if kind == "mlflow":
        if directory is not None:
            raise PerflawError("--track-dir is for --track tensorboard; give MLflow a folder or URI with --track-uri")
        tracker: Tracker = MlflowTracker(uri, experiment)
    elif kind == "tensorboard":
        if uri is not None:
            raise PerflawError("--track-uri is for --track mlflow; give TensorBoard a folder with --track-dir")
        tracker = TensorBoardTracker(directory, experiment)
    else:
        raise PerflawError(f"unknown tracker {kind!r}; choose one of {', '.join(KINDS)}")
    tracker.check()
    return tracker


def add_track_flags(parser: Any) -> None:
    """Adds ``--track``, ``--track-uri`` and ``--track-dir`` to an argparse parser."""
    group = parser.add_argument_group("experiment tracking (optional)")
    group.add_argument("--track", choices=KINDS, default=None,
                       help="log every trained run to MLflow (needs perflaw[mlflow]) or TensorBoard event files "
                       "(needs perflaw[tensorboard])")
    group.add_argument("--track-uri", default=None, metavar="URI",
                       help=f"MLflow tracking URI or folder (default: $MLFLOW_TRACKING_URI, else ./{DEFAULT_MLFLOW_DIR}, "
                       "a local file store)")
    group.add_argument("--track-dir", default=None, metavar="DIR",
                       help=f"TensorBoard log folder (default: ./{DEFAULT_TENSORBOARD_DIR})")
