"""Hash partitioning of rows by user, spilled to temporary Parquet files.

A file whose users' rows are scattered is grouped externally: every row goes
to the partition its user hashes to (the Rust kernels of ``perflaw._core``,
the same partitioner as the Ray path and as the window spill of
:mod:`perflaw.blocks`), and each partition is then grouped in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from perflaw import _core
from perflaw.arrays import arrow_view, numpy_view, string_array
from perflaw.grouping import stable_argsort
from perflaw.ingest.rows import Rows

__all__ = ["partition_users", "PartitionWriter", "read_partition"]


def partition_users(users: np.ndarray, partitions: int) -> np.ndarray:
    """The partition, in ``0..partitions - 1``, of each user id (int or str), as int64.

    A stable hash: the same id lands in the same partition in every batch,
    process and machine, whatever the width of a NumPy string array.
    """
    if users.dtype.kind in "iu":
        return _core.partition_keys(np.ascontiguousarray(users.astype(np.int64, copy=False)), partitions)
    text = pa.array(np.asarray(users, dtype=str), type=pa.large_string())
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64, count=len(text) + 1, offset=text.offset * 8)
    data = text.buffers()[2]
    chars = np.zeros(0, dtype=np.uint8) if data is None else np.frombuffer(data, dtype=np.uint8)
    return _core.partition_strings(np.ascontiguousarray(offsets), chars, partitions)


class PartitionWriter:
    """Appends rows to one Parquet file per hash partition of the user id.

    Rows are buffered per partition and flushed as row groups, so the memory
    held is about ``batch_rows`` rows whatever the number of partitions. Rows
    keep file order within each partition.
    """

    def __init__(self, folder: Path, n_parts: int, batch_rows: int) -> None:
        self.folder = folder
        self.n_parts = n_parts
        self.flush_rows = max(4096, batch_rows // n_parts)
        self.buffers: list[list[Rows]] = [[] for _ in range(n_parts)]
        self.buffered = [0] * n_parts
        self.writers: dict[int, pq.ParquetWriter] = {}
        self.schema: pa.Schema | None = None

    @property
    def paths(self) -> list[Path]:
        return [self.folder / f"part-{p:05d}.parquet" for p in sorted(self.writers)]

    def add(self, rows: Rows) -> None:
        if len(rows) == 0:
            return
        part = partition_users(rows.users, self.n_parts)
        order = stable_argsort(part, self.n_parts)
        bounds = np.searchsorted(part[order], np.arange(self.n_parts + 1))
        for p in range(self.n_parts):
            if bounds[p] == bounds[p + 1]:
                continue
            take = order[bounds[p] : bounds[p + 1]]
            self.buffers[p].append(rows.take(take))
            self.buffered[p] += len(take)
            if self.buffered[p] >= self.flush_rows:
                self._flush(p)

    def _flush(self, p: int) -> None:
        rows = Rows.concat(self.buffers[p])
        self.buffers[p], self.buffered[p] = [], 0
        if len(rows) == 0:
            return
        columns = {"user": arrow_view(rows.users), "item": arrow_view(rows.items)}
        if rows.times is not None:
            columns["time"] = arrow_view(rows.times)
        table = pa.table(columns)
        if self.schema is None:
            self.schema = table.schema
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        if p not in self.writers:
            # Spill files live seconds: favour speed over size.
            self.writers[p] = pq.ParquetWriter(
                self.folder / f"part-{p:05d}.parquet",
                self.schema,
                compression="lz4",
                use_dictionary=False,
                write_statistics=False,
            )
        self.writers[p].write_table(table)

    def close(self) -> None:
        try:
            for p in range(self.n_parts):
                self._flush(p)
        finally:
            for writer in self.writers.values():
                writer.close()


def read_partition(path: Path) -> Rows:
    """The rows of one spilled partition, in the order they were written."""
    table = pq.read_table(path)

    def column(name: str) -> np.ndarray:
        values = table.column(name)
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            return string_array(values)
        return numpy_view(values)

    times = column("time") if "time" in table.column_names else None
    return Rows(column("user"), column("item"), times)
