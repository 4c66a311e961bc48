"""Scale out on an existing Ray cluster: data quality over sharded logs, sweeps over many machines.

Two entry points, both optional (``pip install 'perflaw[ray]'``):

* :func:`data_quality` computes the same :class:`~perflaw.quality.DataQuality`
  as :func:`perflaw.data_quality`, from Parquet shards or a Ray Dataset whose
  users' rows may be spread over many files. Rows are routed to user
  partitions by a hash of the user id and grouped with a Ray Data shuffle, so
  every user arrives whole in exactly one task; that task builds
  :class:`~perflaw.sequences.Sequences` and runs the Rust kernels
  (:meth:`QualityParts.compute <perflaw.quality.QualityParts.compute>`). The
  per-user arrays come back to the driver and merge exactly. The corpus block
  entropy needs every occurrence of a window in one place, so each task also
  splits its windows by a hash of their m-item prefix
  (``_core.partition_windows``) and pre-counts them; a second shuffle brings
  each prefix partition together, where it is counted exactly and reduced to
  two small count histograms, which add up across partitions
  (:class:`~perflaw.blocks.BlockHistograms`).
* :class:`RayExecutor`, a :class:`perflaw.sweep.Executor`, trains each pending
  run of a sweep as a Ray task with the CPUs and GPUs it asks for, retried when
  its worker dies; :func:`perflaw.sweep.run_sweep` still prepares the data and
  alone writes the results store (:func:`run_sweep` is a shorthand).

Exactness. Counts and the data fingerprint equal the single-machine result
exactly; the floating statistics use exactly rounded sums over the same
per-user values, so they agree to the last bit in practice (the tests allow
1e-12 relative). Windows are matched across workers by item id: raw integer
ids as they are, string ids by a stable 64-bit BLAKE2b hash of the string
(the one the data fingerprint uses); two distinct strings sharing a hash, a
chance of about n² / 2⁶⁵ for n distinct items, would merge their windows.

A user's items keep the order :func:`perflaw.data_quality` gives them: by
``timestamp`` (stable) and otherwise by position in the input. For Parquet
shards the position is (shard, row), shards in the order given (globs
sorted); a Ray Dataset has no row order that survives a shuffle, so it needs
a ``timestamp`` or an ``order`` column.
"""

from __future__ import annotations

import glob as _glob
import logging
import math
import os
import pickle
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from perflaw import sweep
from perflaw.ingest import PARQUET_SUFFIXES
from perflaw.quality import QualityParts, check_m, check_max_len
from perflaw.sequences import positive_int
from perflaw.sweep import Executor, RunJob, RunOutcome, RunSpec
from perflaw.errors import MissingDependency, MissingFileError, PerflawError, PerflawTypeError

if TYPE_CHECKING:
    from perflaw.quality import DataQuality
    from perflaw.sweep import SweepSummary

try:
    import ray
except ImportError as _error:  # pragma: no cover - depends on the environment
    raise MissingDependency("perflaw.cluster", "ray", "ray") from _error

__all__ = ["ClusterError", "connect", "data_quality", "RayExecutor", "run_sweep", "parquet_files", "PARQUET_SUFFIXES"]

# Rows per read chunk of a shard, and the default rows per user partition.
READ_CHUNK_ROWS = 1_000_000
ROWS_PER_USER_PARTITION = 2_000_000
# Rows between the stages: per-user statistics of one user partition (key
# -1 - partition), the pre-counted windows of one prefix partition (key =
# partition), and that partition's count histograms.
_PARTS, _WINDOWS, _HISTOGRAMS = 0, 1, 2
# Columns the reader adds; they must not clash with the data's own.
_SHARD, _ROW, _PART = "__perflaw_shard", "__perflaw_row", "__perflaw_part"


# =================================================================== connect
class ClusterError(PerflawError):
    """No Ray cluster answers at the address given."""


def connect(address: str | None = None, timeout_s: float = 10.0) -> bool:
    """Connects this process to Ray unless it is connected already.

    Parameters
    ----------
    address : str, optional
        ``"HOST:PORT"`` of a running cluster's head (the ``--port`` of
        ``ray start --head``, 6379 by default), ``"ray://HOST:PORT"`` for Ray
        Client, or ``"auto"``. ``None`` does what ``ray.init()`` does: use
        ``RAY_ADDRESS``, else a cluster started on this machine with
        ``ray start``, else start a single-machine Ray instance.
    timeout_s : float
        How long connecting to a given address (argument or ``RAY_ADDRESS``)
        may take: ``ray.init`` retries for minutes where no Ray cluster
        answers, so it runs in a helper thread, given up on after
        ``timeout_s``. An address that refuses connections fails at once.

    Returns
    -------
    bool
        True when this call started the connection (the caller then owns
        ``ray.shutdown()``), False when Ray was connected already (the
        existing connection is used, whatever ``address`` says).

    Raises
    ------
    ClusterError
        The address refuses connections, or no Ray cluster answers there within ``timeout_s``.
    ValueError
        The address does not look like ``HOST:PORT``.

    Examples
    --------
    >>> connect("127.0.0.1:1", timeout_s=2)  # doctest: +SKIP
    Traceback (most recent call last):
    ClusterError: no Ray cluster at 127.0.0.1:1: connection refused ...
    """
    if ray.is_initialized():
        return False
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
        raise PerflawError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    target = address if address is not None else os.environ.get("RAY_ADDRESS") or None
    if target in (None, "auto", "local"):
        try:
            ray.init(address=address, logging_level="WARNING")
        except ConnectionError as exc:
            raise ClusterError(f"cannot connect to a Ray cluster at {address or 'auto'}: {exc}") from None
        return True
    if not isinstance(target, str):
        raise PerflawTypeError(f"address must be a string such as '10.0.0.5:6379', got {target!r}")
    deadline = time.monotonic() + float(timeout_s)
    _check_reachable(target, float(timeout_s))
    _init_within(address, target, float(timeout_s), deadline)
    return True


def _check_reachable(address: str, timeout_s: float) -> None:
    """Fails at once when the address is malformed, or nothing accepts connections there."""
    host_port = address.split("://", 1)[1] if "://" in address else address
    host, _, port_text = host_port.rpartition(":")
    host = host.strip("[]")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise PerflawError(f"a Ray address looks like HOST:PORT (e.g. 10.0.0.5:6379), got {address!r}")
    try:
        socket.create_connection((host, int(port_text)), timeout=timeout_s).close()
    except TimeoutError:
        raise ClusterError(f"no Ray cluster at {address}: no answer within {timeout_s:g}s") from None
    except ConnectionRefusedError:
        raise ClusterError(
            f"no Ray cluster at {address}: connection refused (is `ray start --head` running there?)") from None
    except OSError as exc:
        raise ClusterError(f"no Ray cluster at {address}: {exc.strerror or exc}") from None


class _Attempt:
    """One ``ray.init`` in a helper thread; given up on, it disconnects again if it ever connects."""

    def __init__(self, address: str | None, target: str):
        self.address, self.target = address, target
        self.lock = threading.Lock()
        self.done = self.abandoned = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="perflaw-ray-connect", daemon=True)

    def _run(self) -> None:
        # ray.init warns that it cannot set its SIGTERM handler here; _init_within sets it in the main thread.
        def quiet(record: logging.LogRecord) -> bool:
            return "SIGTERM handler is not set" not in record.getMessage()

        worker_log = logging.getLogger("ray._private.worker")
        worker_log.addFilter(quiet)
        try:
            ray.init(address=self.address, logging_level="WARNING")
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc
        finally:
            worker_log.removeFilter(quiet)
            with self.lock:
                self.done = True
                if self.abandoned and self.error is None:
                    ray.shutdown()  # the caller was told it failed

    def give_up(self) -> bool:  # True when it was still running (and now abandoned)
        with self.lock:
            if not self.done:
                self.abandoned = True
                _ABANDONED.append(self)
            return self.abandoned


# Connection attempts that timed out and may still be running (Ray retries for minutes).
_ABANDONED: list[_Attempt] = []


def _init_within(address: str | None, target: str, timeout_s: float, deadline: float) -> None:
    """``ray.init(address)``, given up on at ``deadline``."""
    for earlier in list(_ABANDONED):  # two ray.init at once in one process would clash
        earlier.thread.join(max(0.0, deadline - time.monotonic()))
        if earlier.thread.is_alive():
            raise ClusterError(
                f"no Ray cluster at {target}: an earlier attempt to connect to {earlier.target} in this "
                "process is still running (Ray gives up on it after a few minutes); try again in a new process")
        _ABANDONED.remove(earlier)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))  # as ray.init does there
    attempt = _Attempt(address, target)
    attempt.thread.start()
    try:
        attempt.thread.join(max(0.0, deadline - time.monotonic()))
    except BaseException:  # Ctrl-C while waiting
        attempt.give_up()
        raise
    if attempt.give_up():
        raise ClusterError(f"no Ray cluster at {target}: no answer within {timeout_s:g}s")
    if isinstance(attempt.error, ConnectionError):
        raise ClusterError(f"cannot connect to a Ray cluster at {target}: {attempt.error}") from None
    if attempt.error is not None:
        raise attempt.error


@contextmanager
def _session(address: str | None, timeout_s: float) -> Iterator[None]:
    """Connected for the block; disconnects afterwards only if it connected."""
    started = connect(address, timeout_s)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


# ============================================================ data quality
@dataclass(frozen=True)
class _Layout:
    """Which columns hold what, and how rows are ordered within a user."""

    user: str
    item: str
    timestamp: str | None
    order: tuple[str, ...]  # columns that order a user's rows, after the timestamp
    user_partitions: int

    @property
    def data_columns(self) -> list[str]:
        return [self.user, self.item] + ([self.timestamp] if self.timestamp else [])


def data_quality(
    source: Any,
    m: int = 2,
    max_len: int | None = None,
    *,
    address: str | None = None,
    user: str = "user",
    item: str = "item",
    timestamp: str | None = None,
    order: str | None = None,
    block_entropy: bool = True,
    partitions: int = 64,
    user_partitions: int | None = None,
    threads: int = 1,
    progress: bool | None = None,
    timeout_s: float = 10.0,
) -> "DataQuality":
    """Data-quality summary of a sharded corpus, computed on a Ray cluster.

    Returns the same :class:`~perflaw.quality.DataQuality` as
    :func:`perflaw.data_quality` on the same interactions: exact counts and
    fingerprint, the same floating statistics (exactly rounded sums).

    Parameters
    ----------
    source : path, glob, list of them, or ray.data.Dataset
        Parquet files (a file, a folder of ``*.parquet``/``*.pq``/``*.parq``
        files searched recursively, or a glob), read in the order given (each
        glob and folder sorted); every node must see them at the same path
        (a shared file system). Or a Ray Dataset with the named columns (for
        object stores such as S3, ``ray.data.read_parquet(...)``).
    m, max_len
        As for :func:`perflaw.data_quality`.
    address : str, optional
        The cluster (see :func:`connect`); an existing connection is reused.
    user, item, timestamp : str
        Column names. A user's items are ordered by ``timestamp`` (stable).
    order : str, optional
        A column that orders each user's rows (after ``timestamp``): e.g. a
        global row number. Parquet shards need none (the order is shard,
        then row); a Dataset needs ``timestamp`` or ``order``.
    block_entropy : bool
        Also compute the corpus block entropy (a second shuffle, of window counts).
    partitions : int
        Prefix partitions of the window shuffle.
    user_partitions : int, optional
        User partitions of the row shuffle; each is one task holding whole
        users. Default: one per 2 million rows (Parquet) and at least
        ``partitions``.
    threads : int
        CPUs each task asks Ray for, and kernel threads it runs.
    progress : bool, optional
        Ray Data progress bars on stderr (default: when stderr is a terminal).
    timeout_s : float
        How long to wait for the cluster to answer (see :func:`connect`).

    Returns
    -------
    perflaw.quality.DataQuality

    Raises
    ------
    ClusterError
        No cluster answers at ``address``.
    ValueError
        A missing column (named, with those present), no rows, no files
        matching a pattern, a Dataset without ``timestamp`` or ``order``.

    Examples
    --------
    >>> import perflaw
    >>> from perflaw import cluster
    >>> q = cluster.data_quality("logs/part-*.parquet", m=2, address="10.0.0.5:6379")  # doctest: +SKIP
    >>> q.d_prime == perflaw.data_quality("logs/all.parquet", m=2).d_prime  # doctest: +SKIP
    True
    """
    m, max_len = check_m(m), check_max_len(max_len)
    partitions = positive_int(partitions, "partitions")
    threads = positive_int(threads, "threads")
    for name, value in (("user", user), ("item", item)):
        if not isinstance(value, str) or not value:
            raise PerflawTypeError(f"{name} must be a non-empty column name, got {value!r}")
    for name, value in (("timestamp", timestamp), ("order", order)):
        if value is not None and (not isinstance(value, str) or not value):
            raise PerflawTypeError(f"{name} must be a column name or None, got {value!r}")
    if progress is None:
        progress = sys.stderr.isatty()
    with _session(address, timeout_s), _data_context(progress, source):
        rows, layout = _routed_rows(source, user, item, timestamp, order, partitions, user_partitions)
        grouped = rows.groupby(_PART, num_partitions=_shuffle_width(layout.user_partitions))
        stats = grouped.map_groups(
            _user_partition_stats,
            fn_kwargs={"layout": layout, "m": m, "max_len": max_len, "threads": threads,
                       "partitions": partitions if block_entropy else 0},
            batch_format="pyarrow",
            num_cpus=threads,
        )
        if block_entropy:  # the second shuffle: windows by prefix partition; per-user rows pass through
            width = _shuffle_width(partitions + layout.user_partitions)
            stats = stats.groupby("key", num_partitions=width).map_groups(
                _count_prefix_partition, fn_kwargs={"m": m}, batch_format="pyarrow", num_cpus=threads)
        parts, block = _collect(stats, block_entropy)
        if not parts:
            raise PerflawError(f"no interactions in {_describe(source)}")
    return QualityParts.combine(parts).summarize(block)


def _describe(source: Any) -> str:
    return type(source).__name__ if _is_dataset(source) else repr(source)


def _is_dataset(source: Any) -> bool:
    import ray.data

    return isinstance(source, ray.data.Dataset)


@contextmanager
def _data_context(progress: bool, source: Any = None) -> Iterator[None]:
    """Ray Data settings for the block, restored afterwards.

    The shuffles group by a partition number, few keys and many rows per key:
    Ray's sort-based shuffle runs them as plain tasks, where the default hash
    shuffle of recent versions first starts a pool of aggregator actors
    (tens of seconds on a small cluster). A Dataset carries the context it was
    made with (shared by the datasets derived from it), so a Dataset source's
    context is set too.
    """
    from ray.data import DataContext

    contexts = [DataContext.get_current()]
    own = getattr(source, "context", None) if _is_dataset(source) else None
    if own is not None and own is not contexts[0]:
        contexts.append(own)
    saved = [{name: getattr(c, name) for name in ("enable_progress_bars", "shuffle_strategy") if hasattr(c, name)}
             for c in contexts]
    for context, values in zip(contexts, saved):
        context.enable_progress_bars = bool(progress)
        if "shuffle_strategy" in values:
            from ray.data.context import ShuffleStrategy

            context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    # Without progress bars, Ray Data's per-stage INFO lines are noise on stderr.
    data_logger = logging.getLogger("ray.data")
    saved_level = data_logger.level
    if not progress:
        data_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        data_logger.setLevel(saved_level)
        for context, values in zip(contexts, saved):
            for name, value in values.items():
                setattr(context, name, value)


def _shuffle_width(groups: int) -> int:
    """Output blocks of a shuffle: enough to keep every CPU busy, at most one per group."""
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, min(groups, 2 * cpus))


# ----------------------------------------------------------------- sources
def parquet_files(source: Any) -> list[Path]:
    """The Parquet files a path, folder, glob or list of them names, in order.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b.parquet", "a.parquet", "notes.txt"):
    ...     _ = (folder / name).write_bytes(b"")
    >>> [p.name for p in parquet_files(folder)]
    ['a.parquet', 'b.parquet']
    """
    entries = [source] if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(entries, (list, tuple)) or not entries:
        raise PerflawTypeError(
            f"source must be a Parquet path, a glob, a non-empty list of them or a ray.data.Dataset, got {source!r}"
        )
    files: list[Path] = []
    for entry in entries:
        if not isinstance(entry, (str, os.PathLike)):
            raise PerflawTypeError(f"expected a path or a glob, got {entry!r} ({type(entry).__name__})")
        text = os.fspath(entry)
        if "://" in text:
            raise PerflawError(
                f"{text!r}: read remote storage with ray.data.read_parquet(...) and pass the Dataset "
                "(with timestamp= or order=)"
            )
        path = Path(text).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PARQUET_SUFFIXES)
            if not found:
                raise PerflawError(f"no Parquet files ({', '.join(PARQUET_SUFFIXES)}) in folder {text!r}")
        elif path.is_file():
            found = [path]
        elif _glob.has_magic(text):
            found = sorted(Path(p) for p in _glob.glob(os.path.expanduser(text), recursive=True) if Path(p).is_file())
            if not found:
                raise PerflawError(f"no files match {text!r}")
        else:
            raise MissingFileError(2, "No such file or folder", text)
        files.extend(found)
    return [f.resolve() for f in files]


def _routed_rows(source, user, item, timestamp, order, partitions, user_partitions):
    """A Dataset of the interactions with a user-partition column, and its layout."""
    if _is_dataset(source):
        return _routed_dataset(source, user, item, timestamp, order, partitions, user_partitions)
    return _routed_parquet(source, user, item, timestamp, order, partitions, user_partitions)


def _routed_parquet(source, user, item, timestamp, order, partitions, user_partitions):
    import pyarrow.parquet as pq
    import ray.data

    files = parquet_files(source)
    wanted = [user, item] + [c for c in (timestamp, order) if c]
    total_rows = 0
    for path in files:
        try:
            metadata = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several kinds for a bad file
            raise PerflawError(f"{path} is not a readable Parquet file: {exc}") from None
        _check_columns(wanted, metadata.schema_arrow.names, str(path))
        total_rows += metadata.metadata.num_rows
    if total_rows == 0:
        raise PerflawError(f"no interactions: the {len(files)} Parquet file(s) of {source!r} have no rows")
    if user_partitions is None:
        user_partitions = max(partitions, math.ceil(total_rows / ROWS_PER_USER_PARTITION))
    layout = _Layout(user, item, timestamp, ((order,) if order else ()) + (_SHARD, _ROW),
                     positive_int(user_partitions, "user_partitions"))
    shards = ray.data.from_items([{"shard": i, "path": str(p)} for i, p in enumerate(files)],
                                 override_num_blocks=len(files))
    columns = layout.data_columns + ([order] if order else [])
    rows = shards.map_batches(_read_shards, batch_size=1, batch_format="pyarrow",
                              fn_kwargs={"columns": columns, "layout": layout})
    return rows, layout


def _routed_dataset(ds, user, item, timestamp, order, partitions, user_partitions):
    if timestamp is None and order is None:
        raise PerflawError(
            "a Ray Dataset has no row order that survives a shuffle: pass timestamp= (and/or order=, "
            "a column such as a global row number) so each user's items keep a defined order"
        )
    schema = ds.schema()
    if schema is None or ds.limit(1).count() == 0:  # limit(1) stops at the first row found
        raise PerflawError("no interactions: the Ray Dataset is empty")
    wanted = [user, item] + [c for c in (timestamp, order) if c]
    _check_columns(wanted, list(schema.names), "the Ray Dataset")
    layout = _Layout(user, item, timestamp, (order,) if order else (),
                     positive_int(user_partitions if user_partitions is not None else partitions, "user_partitions"))
    rows = ds.select_columns(list(dict.fromkeys(wanted))).map_batches(
        _route, batch_format="pyarrow", fn_kwargs={"layout": layout})
    return rows, layout


def _check_columns(wanted: list[str], present: list[str], where: str) -> None:
    missing = [name for name in dict.fromkeys(wanted) if name not in present]
    if missing:
        raise PerflawError(f"{where}: missing column(s) {missing}; it has {present}")


# ------------------------------------------------------ tasks: read, route
def _read_shards(shards, columns: list[str], layout: _Layout):
    """Reads each shard in chunks, numbering its rows and routing them to user partitions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for shard, path in zip(shards.column("shard").to_pylist(), shards.column("path").to_pylist()):
        parquet = pq.ParquetFile(path)
        _check_columns(columns, parquet.schema_arrow.names, path)
        first_row = 0
        for batch in parquet.iter_batches(batch_size=READ_CHUNK_ROWS, columns=list(dict.fromkeys(columns))):
            table = pa.Table.from_batches([batch])
            n = table.num_rows
            table = table.append_column(_SHARD, pa.array(np.full(n, shard, dtype=np.int32)))
            table = table.append_column(_ROW, pa.array(np.arange(first_row, first_row + n, dtype=np.int64)))
            first_row += n
            yield _route(table, layout)


def _route(table, layout: _Layout):
    """The table with the user-partition column added (a stable hash of the user id)."""
    import pyarrow as pa

    from perflaw.ingest.spill import partition_users

    users = table.column(layout.user)
    if users.null_count:
        raise PerflawError(f"column {layout.user!r} holds {users.null_count} missing values (nulls)")
    values = np.asarray(users.to_numpy())
    if values.dtype.kind not in "iu":
        if values.dtype == object and all(isinstance(v, (int, np.integer)) for v in values.tolist()):
            values = values.astype(np.int64)
        else:
            values = values.astype(str)
    part = partition_users(values, layout.user_partitions)
    return table.append_column(_PART, pa.array(part))


# ------------------------------------------- tasks: one user partition
def _user_partition_stats(table, layout: _Layout, m: int, max_len: int | None, threads: int, partitions: int):
    """Per-user statistics of one user partition, and its windows pre-counted by prefix partition.

    Output rows: (kind, key, payload). ``_PARTS`` (key -1 - user partition): a
    pickled :class:`~perflaw.quality.QualityParts`. ``_WINDOWS`` (key = prefix
    partition): the partition's distinct windows in this task and their counts.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from perflaw import _core
    from perflaw.sequences import Sequences

    # Position first: the timestamp sort in from_table is stable, so ties keep it.
    if layout.order:
        table = table.take(pc.sort_indices(table, sort_keys=[(name, "ascending") for name in layout.order]))
    seqs = Sequences.from_table(table, layout.user, layout.item, layout.timestamp)
    parts = QualityParts.compute(seqs, m, max_len, threads, block_entropy=False)
    user_partition = int(table.column(_PART)[0].as_py())
    kinds, keys, payloads = [_PARTS], [-1 - user_partition], [pickle.dumps(parts, protocol=5)]
    if partitions:
        # Item keys that agree across tasks: raw integer ids, or a stable hash of string ids.
        items = seqs.stable_item_keys()
        rows, bounds = _core.partition_windows(seqs.offsets, items, m, partitions, max_len)
        for p in range(partitions):
            if bounds[p] == bounds[p + 1]:
                continue
            block = np.ascontiguousarray(rows[bounds[p] : bounds[p + 1]]).reshape(-1)
            counts = _core.WindowCounts.from_arrays(m, block, np.ones(len(block) // (m + 1), dtype=np.uint64))
            kinds.append(_WINDOWS)
            keys.append(p)
            payloads.append(pickle.dumps(counts.to_arrays(), protocol=5))
    return pa.table({
        "kind": pa.array(kinds, type=pa.int8()),
        "key": pa.array(keys, type=pa.int64()),
        "payload": pa.array(payloads, type=pa.large_binary()),
    })


# -------------------------------------------- tasks: one prefix partition
def _count_prefix_partition(table, m: int):
    """Exact window counts of one prefix partition, reduced to its two count histograms.

    Rows of per-user statistics (their own groups) pass through unchanged.
    """
    import pyarrow as pa

    from perflaw import _core
    from perflaw.blocks import BlockHistograms

    if table.column("kind")[0].as_py() == _PARTS:
        return table
    windows, counts = [], []
    for blob in table.column("payload").to_pylist():
        distinct, count = pickle.loads(blob)
        windows.append(np.ascontiguousarray(distinct).reshape(-1))
        counts.append(np.asarray(count, dtype=np.uint64))
    merged = _core.WindowCounts.from_arrays(m, np.concatenate(windows), np.concatenate(counts))
    histograms = BlockHistograms.from_counts(merged)
    return pa.table({
        "kind": pa.array([_HISTOGRAMS], type=pa.int8()),
        "key": pa.array([table.column("key")[0].as_py()], type=pa.int64()),
        "payload": pa.array([pickle.dumps((histograms.joint, histograms.prefix), protocol=5)],
                            type=pa.large_binary()),
    })


def _collect(stats, block_entropy: bool):
    """Per-user statistics and the summed block histograms, streamed to the driver.

    Prefix partitions hold disjoint prefixes, so their histograms add up
    (:class:`~perflaw.blocks.BlockHistograms`); without any window (every user
    has at most m items) the histograms stay empty, as in the local engine.
    """
    from perflaw.blocks import BlockHistograms

    parts, block = [], BlockHistograms() if block_entropy else None
    for batch in stats.iter_batches(batch_format="pyarrow", batch_size=None):
        for kind, payload in zip(batch.column("kind").to_pylist(), batch.column("payload").to_pylist()):
            if kind == _PARTS:
                parts.append(pickle.loads(payload))
            elif kind == _HISTOGRAMS:
                joint, prefix = pickle.loads(payload)
                block = block + BlockHistograms(joint=joint, prefix=prefix)
            else:
                raise AssertionError(f"unexpected row kind {kind}")  # windows are always reduced
    return parts, block


# =================================================================== sweeps
class RayExecutor(Executor):
    """Trains each run of a sweep as a Ray task (a :class:`perflaw.sweep.Executor`).

    :func:`perflaw.sweep.run_sweep` prepares each data variant on the driver;
    its sequences go into Ray's object store once and its pending runs are
    submitted at once, placed by Ray where their resources are free. The
    driver records each as it finishes, so it alone writes the store; each
    row also gets ``ray_node_id``, ``ray_node_ip`` and ``ray_worker_pid``.

    A run whose worker process or node dies is retried by Ray (``max_retries``
    times), resuming from its last checkpoint when the sweep folder is on a
    file system the new worker sees; when the retries run out it is recorded
    as failed, and the next sweep retries it. A run that raises is recorded as
    failed with its error and not retried (:func:`perflaw.sweep.execute_run`).

    Parameters
    ----------
    address : str, optional
        The cluster (see :func:`connect`), connected when the sweep starts and
        disconnected when it ends unless this process was connected already.
    cpus_per_run : float
        CPUs each run asks for; also its torch thread count.
    gpus_per_run : float, optional
        GPUs each run asks for. Default: 1 when the run's device is ``auto``
        or ``cuda...`` and the cluster has GPUs, else 0. A ``cuda`` device on a cluster
        without GPUs, or more GPUs than it has, is an error before anything is written.
    max_retries : int
        Retries of a run whose worker died.
    timeout_s : float
        How long connecting may take (see :func:`connect`).

    Examples
    --------
    >>> from perflaw import sweep, cluster
    >>> spec = sweep.load_spec("sweep.toml")  # doctest: +SKIP
    >>> executor = cluster.RayExecutor("10.0.0.5:6379", cpus_per_run=4)
    >>> sweep.run_sweep(spec, "out/sweep", executor=executor).finished  # doctest: +SKIP
    24
    """

    label = "ray"

    def __init__(self, address: str | None = None, *, cpus_per_run: float = 1, gpus_per_run: float | None = None,
                 max_retries: int = 3, timeout_s: float = 10.0):
        def number(value: Any, kinds: tuple = (int, float)) -> bool:
            return isinstance(value, kinds) and not isinstance(value, bool)

        if not (number(cpus_per_run) and cpus_per_run > 0):
            raise PerflawError(f"cpus_per_run must be a positive number, got {cpus_per_run!r}")
        if gpus_per_run is not None and not (number(gpus_per_run) and gpus_per_run >= 0):
            raise PerflawError(f"gpus_per_run must be a non-negative number or None, got {gpus_per_run!r}")
        if not (number(max_retries, (int,)) and max_retries >= 0):
            raise PerflawError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        self.address, self.timeout_s = address, timeout_s
        self.cpus_per_run, self.gpus_per_run, self.max_retries = cpus_per_run, gpus_per_run, max_retries
        self._connected_here, self._cluster_gpus = False, 0.0
        self._in_flight: dict[Any, RunJob] = {}
        self._data = self._sequences = None  # the PreparedData whose sequences are in the object store, and their ref

    def start(self, runs: Sequence[RunSpec]) -> None:
        """Connects, and checks that the cluster can place every run."""
        self._connected_here = connect(self.address, self.timeout_s)
        self._cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
        for run in runs:
            _gpus_for(run.config.device, self._cluster_gpus, self.gpus_per_run)

    def submit(self, job: RunJob) -> None:
        if job.data is not self._data:  # a new data variant: its sequences go to the object store once
            self._data, self._sequences = job.data, ray.put(job.data.sequences)
        task = _train_run.options(
            num_cpus=self.cpus_per_run,
            num_gpus=_gpus_for(job.run.config.device, self._cluster_gpus, self.gpus_per_run),
            max_retries=self.max_retries,
            retry_exceptions=False,
            name=f"perflaw-run-{job.key}",
        )
        ref = task.remote(job.run, self._sequences, job.data.quality, job.key, job.train_fn,
                          str(Path(job.checkpoint_root).resolve()), self.cpus_per_run)
        self._in_flight[ref] = job

    def finished(self, block: bool) -> Iterator[tuple[RunJob, RunOutcome]]:
        while self._in_flight:
            ready, _ = ray.wait(list(self._in_flight), num_returns=1, timeout=None if block else 0)
            if not ready:
                return
            for ref in ready:
                job = self._in_flight.pop(ref)
                try:
                    outcome, where = ray.get(ref)
                    outcome = RunOutcome({**outcome.row, **where}, outcome.status, outcome.seconds)
                except ray.exceptions.RayError as exc:  # the worker or node died, and the retries ran out
                    lines = str(exc).strip().splitlines()
                    outcome = job.failure(f"{type(exc).__name__}: {lines[0] if lines else ''}")
                yield job, outcome

    def close(self) -> None:
        """Cancels the runs still in flight (a stopped driver leaves no training behind); disconnects."""
        try:
            for ref in self._in_flight:
                ray.cancel(ref, force=True)
        finally:
            self._in_flight.clear()
            self._data = self._sequences = None
            if self._connected_here:
                self._connected_here = False
                ray.shutdown()


def run_sweep(spec: Any, out_dir: str | os.PathLike[str], *, address: str | None = None,
              train_fn: Callable[..., Any] | None = None, cpus_per_run: float = 1, gpus_per_run: float | None = None,
              max_retries: int = 3, progress: bool = True, log: Callable[[str], None] | None = None,
              timeout_s: float = 10.0) -> "SweepSummary":
    """:func:`perflaw.sweep.run_sweep` (same contract and summary) with a :class:`RayExecutor`.

    ``address``, ``cpus_per_run``, ``gpus_per_run``, ``max_retries`` and
    ``timeout_s`` go to the executor; ``train_fn`` runs on the workers. E.g.
    ``cluster.run_sweep(sweep.load_spec("sweep.toml"), "out/sweep", address="10.0.0.5:6379")``.
    """
    executor = RayExecutor(address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, max_retries=max_retries,
                           timeout_s=timeout_s)
    return sweep.run_sweep(spec, out_dir, progress=progress, train_fn=train_fn, log=log, executor=executor)


def _gpus_for(device: str, cluster_gpus: float, requested: float | None) -> float:
    """GPUs a run asks for: as requested, else one when its device may use CUDA and the cluster has GPUs."""
    wants_cuda = device.startswith("cuda")
    if wants_cuda and cluster_gpus == 0:
        raise PerflawError(
            f"a run asks for device {device!r} but the Ray cluster has no GPUs; use device='cpu' or 'auto'")
    if requested is not None:
        if requested > cluster_gpus:
            raise PerflawError(f"gpus_per_run={requested:g} but the Ray cluster has {cluster_gpus:g} GPU(s)")
        return float(requested)
    return 1.0 if (wants_cuda or device == "auto") and cluster_gpus >= 1 else 0.0


@ray.remote
def _train_run(run, sequences, quality, key, train_fn, checkpoint_root, cpus):
    """One training run on a worker; returns its outcome and where it ran."""
    import torch

    torch.set_num_threads(max(1, int(cpus)))
    outcome = sweep.execute_run(run, sequences, quality, key, train_fn, Path(checkpoint_root))
    where = {"ray_node_id": ray.get_runtime_context().get_node_id(), "ray_node_ip": ray.util.get_node_ip_address(),
             "ray_worker_pid": os.getpid()}
    return outcome, where
