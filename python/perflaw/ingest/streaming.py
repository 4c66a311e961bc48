"""A file streamed in batches of whole users, in bounded memory.

Users whose rows are contiguous are cut at user boundaries as chunks are
read; otherwise rows are hash-partitioned by user to disk (:mod:`.spill`) and
each partition is grouped on its own.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from perflaw.grouping import run_heads
from perflaw.ingest.contiguity import ContiguityCheck
from perflaw.ingest.detect import count_rows_hint
from perflaw.ingest.parquet import open_parquet
from perflaw.ingest.readers import row_chunks
from perflaw.ingest.rows import Rows, UserRuns, to_sequences, to_user_runs
from perflaw.ingest.spec import Spec
from perflaw.ingest.spill import PartitionWriter, read_partition
from perflaw.sequences import Sequences
from perflaw.errors import NotGroupedError, PerflawError
from perflaw.progress import progress_bar

__all__ = ["stream_batches", "stream_user_runs"]

_MAX_PARTITIONS = 512  # open Parquet writers during external grouping


def stream_batches(
    spec: Spec, batch_rows: int, progress: bool, grouped: bool | None, tmp_dir: Any
) -> Iterator[Sequences]:
    """:func:`~perflaw.ingest.iter_batches` on checked arguments."""
    for rows in _whole_user_rows(spec, batch_rows, progress, grouped, tmp_dir, optimistic=False):
        yield to_sequences(rows, "first")


def stream_user_runs(
    spec: Spec, batch_rows: int, progress: bool, grouped: bool | None, tmp_dir: Any
) -> Iterator[UserRuns]:
    """:func:`~perflaw.ingest.iter_user_runs` on checked arguments."""
    for rows in _whole_user_rows(spec, batch_rows, progress, grouped, tmp_dir, optimistic=True):
        yield to_user_runs(rows)


def _whole_user_rows(
    spec: Spec, batch_rows: int, progress: bool, grouped: bool | None, tmp_dir: Any, optimistic: bool
) -> Iterator[Rows]:
    """Batches of rows holding whole users. With ``optimistic`` and ``grouped=None``
    the file is read once as if grouped, and NotGroupedError is raised if it is not."""
    total_rows = None
    if grouped is None and spec.format != "sasrec" and count_rows_hint(spec.path, spec.format) <= batch_rows // 2:
        batches: Iterator[Rows] = _one_batch(spec, progress)  # small: no need to check the order
    elif spec.format == "sasrec":  # one line per user: whole users in every chunk
        batches = _whole_user_chunks(spec, batch_rows, progress)
    elif grouped is None and optimistic:
        batches = _contiguous_batches(spec, batch_rows, progress, NotGroupedError, "read it with grouped=False")
    else:
        if grouped is None:
            grouped, total_rows = _scan_contiguity(spec, batch_rows, progress)
        if grouped:
            batches = _contiguous_batches(spec, batch_rows, progress, PerflawError, "use grouped=None or False")
        else:
            batches = _external_batches(spec, batch_rows, progress, total_rows, tmp_dir)
    produced = False
    for rows in batches:
        if len(rows):
            produced = True
            yield rows
    if not produced:
        raise PerflawError(f"{spec.path} holds no interactions")


def _progress_bar(spec: Spec, progress: bool, description: str) -> Any:
    if spec.format == "parquet":
        total = open_parquet(spec.path).metadata.num_rows
        return progress_bar(progress, total=total, unit="rows", unit_scale=True, desc=description)
    total = os.path.getsize(spec.path)
    return progress_bar(progress, total=total, unit="B", unit_scale=True, desc=description)


def _scan_contiguity(spec: Spec, batch_rows: int, progress: bool) -> tuple[bool, int | None]:
    """(are each user's rows contiguous?, rows counted) from one pass over the users."""
    check = ContiguityCheck()
    with _progress_bar(spec, progress, "checking user order") as bar:
        with contextlib.closing(row_chunks(spec, batch_rows, "users", bar.update)) as chunks:
            for rows in chunks:
                if check.add(rows.users) >= 0:
                    return False, None
    return True, check.rows


def _one_batch(spec: Spec, progress: bool) -> Iterator[Rows]:
    """A file that fits in one batch, read whole."""
    with _progress_bar(spec, progress, "reading") as bar:
        yield Rows.concat(list(row_chunks(spec, None, "all", bar.update)))


def _whole_user_chunks(spec: Spec, batch_rows: int, progress: bool) -> Iterator[Rows]:
    """sasrec: every chunk of whole lines already holds whole users."""
    with _progress_bar(spec, progress, "reading") as bar:
        yield from row_chunks(spec, batch_rows, "all", bar.update)


def _contiguous_batches(
    spec: Spec, batch_rows: int, progress: bool, not_grouped: type[PerflawError], remedy: str
) -> Iterator[Rows]:
    """Chunks cut at user boundaries; the trailing user moves to the next batch.

    Contiguity is verified on the way (cheaply), so that a file that is not
    grouped raises ``not_grouped`` (its message ending with ``remedy``) instead
    of splitting a user.
    """
    check = ContiguityCheck()
    carried: list[Rows] = []  # the rows so far of a user that may go on in the next chunk
    row_number = 0
    with _progress_bar(spec, progress, "reading") as bar:
        for rows in row_chunks(spec, batch_rows, "all", bar.update):
            if len(rows) == 0:
                continue
            heads = run_heads(rows.users, None)
            broken = check.add(rows.users, heads)
            if broken >= 0:
                raise not_grouped(
                    f"{spec.path}: user {rows.users[broken]} reappears in row {row_number + broken + 1} "
                    f"after other users' rows; the file is not grouped by user ({remedy})"
                )
            row_number += len(rows)
            first_head = 0
            if carried:
                if carried[-1].users[-1] == rows.users[0]:  # the carried user goes on
                    if len(heads) == 1:
                        carried.append(rows)  # ... through the whole chunk
                        continue
                    carried.append(rows.slice(0, heads[1]))
                    first_head = heads[1]
                # the carried user alone, so that the chunk's other users need no copy
                yield _one_user(Rows.concat(carried))
                carried = []
            if heads[-1] > first_head:
                whole = rows.slice(first_head, heads[-1])
                # checked above: every user of the chunk is one run
                whole.one_run_heads = heads[:-1] if first_head == 0 else heads[1:-1] - first_head
                yield whole
            carried.append(rows.slice(heads[-1]))
        if carried:
            yield _one_user(Rows.concat(carried))


def _one_user(rows: Rows) -> Rows:
    """``rows``, known to hold one user's run."""
    rows.one_run_heads = np.zeros(1, dtype=np.int64)
    return rows


def _external_batches(
    spec: Spec, batch_rows: int, progress: bool, total_rows: int | None, tmp_dir: Any
) -> Iterator[Rows]:
    """Hash-partition rows by user into temporary Parquet files, then group each."""
    if total_rows is None:
        total_rows = count_rows_hint(spec.path, spec.format)
    n_parts = int(min(_MAX_PARTITIONS, max(1, math.ceil(total_rows / batch_rows))))
    with tempfile.TemporaryDirectory(prefix="perflaw-groups-", dir=tmp_dir) as folder:
        writer = PartitionWriter(Path(folder), n_parts, batch_rows)
        try:
            with _progress_bar(spec, progress, "partitioning by user") as bar:
                for rows in row_chunks(spec, batch_rows, "all", bar.update):
                    writer.add(rows)
        finally:
            writer.close()
        for part in progress_bar(progress, iterable=writer.paths, desc="grouping partitions"):
            yield read_partition(part)
