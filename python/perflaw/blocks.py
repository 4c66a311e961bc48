"""Corpus-level conditional block entropy H(X_{m+1} | X_1..X_m), in memory or spilled to disk.

With c(wx) the number of windows w followed by item x over all users, c(w·)
the count of the m-item prefix w and T the number of windows,

    H = (1/T) · [ Σ_w c(w·) ln c(w·) − Σ_wx c(wx) ln c(wx) ],

so only two histograms {count: how many distinct windows have it} are needed.
Histograms of window sets whose prefixes are disjoint simply add up. That is
what lets a file larger than memory be handled: ``WindowSpill`` sends every
window to one of P partitions chosen by a hash of its prefix (held in memory up
to a budget, in files beyond it), then counts each partition exactly on its
own. The result equals the in-memory one bit for bit, because the final sums
are exactly rounded (as ``math.fsum``) over the same histograms, by the one
kernel (``_core.histogram_entropy``) every path uses.

The windows are spread over the files by the project's one partitioner
(``rust/partition.rs``, as for users in ``perflaw.ingest`` and the Ray path).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
import numpy as np

from perflaw import _core
from perflaw.errors import PerflawError

@dataclass(frozen=True)
class BlockHistograms:
    """Count histograms of the (m+1)-windows (``joint``) and of their m-prefixes (``prefix``).

    Examples
    --------
    >>> counts = _core.WindowCounts(1)
    >>> counts.update(np.array([0, 4]), np.array([1, 2, 1, 2]))
    >>> h = BlockHistograms.from_counts(counts)
    >>> h.total, h.distinct, h.conditional_entropy()
    (3, 2, 0.0)
    """

    joint: dict[int, int] = field(default_factory=dict)
    prefix: dict[int, int] = field(default_factory=dict)

    @classmethod
    def from_counts(cls, counts: "_core.WindowCounts") -> "BlockHistograms":
        return cls.from_arrays(*counts.histograms())

    @classmethod
    def from_rows(cls, flat_windows: np.ndarray, m: int) -> "BlockHistograms":
        """Histograms of a bag of windows given as flattened rows of m + 1 ids."""
        return cls.from_arrays(*_core.window_histograms(flat_windows, m))

    @classmethod
    def from_arrays(cls, joint_counts, joint_windows, prefix_counts, prefix_windows) -> "BlockHistograms":
        return cls(
            joint=dict(zip(joint_counts.tolist(), joint_windows.tolist())),
            prefix=dict(zip(prefix_counts.tolist(), prefix_windows.tolist())),
        )

    def __add__(self, other: "BlockHistograms") -> "BlockHistograms":
        """Histograms of two window sets with disjoint prefixes."""
        return BlockHistograms.sum([self, other])

    @staticmethod
    def sum(parts: "list[BlockHistograms]") -> "BlockHistograms":
        """Histograms of several window sets with pairwise disjoint prefixes."""
        joint: dict[int, int] = {}
        prefix: dict[int, int] = {}
        for part in parts:
            for total, histogram in ((joint, part.joint), (prefix, part.prefix)):
                for count, windows in histogram.items():
                    total[count] = total.get(count, 0) + windows
        return BlockHistograms(joint=joint, prefix=prefix)

    @property
    def total(self) -> int:
        """Number of windows, T."""
        return sum(count * windows for count, windows in self.joint.items())

    @property
    def distinct(self) -> int:
        """Number of distinct (m+1)-windows."""
        return sum(self.joint.values())

    def conditional_entropy(self) -> float:
        """H(X_{m+1} | X_1..X_m) in nats; NaN without windows.

        Computed by the kernel that ``WindowCounts.conditional_entropy`` uses,
        with exactly rounded sums, so every way of counting agrees bit for bit.
        """
        return _core.histogram_entropy(*_arrays(self.joint), *_arrays(self.prefix))


def _arrays(histogram: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A histogram {count: windows} as (counts, windows) uint64 arrays."""
    counts = np.fromiter(histogram.keys(), dtype=np.uint64, count=len(histogram))
    windows = np.fromiter(histogram.values(), dtype=np.uint64, count=len(histogram))
    return counts, windows


class WindowSpill:
    """Groups windows by prefix hash into ``partitions``, in memory up to ``memory``
    bytes and in one file per partition beyond it; ``histograms()`` counts each
    partition alone.

    The grouping and the counting are Rust's (``_core.WindowWriter``): a window
    is held as one packed integer of 8 bytes where the ids of a batch span less
    than 2^(64 / (m + 1)) (16 bytes up to 2^(128 / (m + 1)), else its m + 1
    ids). Once the windows held exceed ``memory``, every partition's windows
    are appended to its file and the memory reused. While counting, a worker
    holds about twice one partition's windows. The folder is removed by
    ``close()`` (or on leaving a ``with`` block).

    Examples
    --------
    >>> with WindowSpill(m=1, partitions=4) as spill:
    ...     spill.add(np.array([0, 4]), np.array([1, 2, 1, 2]))
    ...     spill.histograms().conditional_entropy()
    0.0
    """

    def __init__(
        self,
        m: int,
        max_len: int | None = None,
        partitions: int = 64,
        tmp_dir: str | None = None,
        memory: int = 0,
    ):
        if partitions < 1:
            raise PerflawError(f"partitions must be >= 1, got {partitions}")
        if memory < 0:
            raise PerflawError(f"memory must be >= 0 bytes, got {memory}")
        self.m, self.max_len, self.partitions = m, max_len, partitions
        self._dir = Path(tempfile.mkdtemp(prefix="perflaw-windows-", dir=tmp_dir))
        paths = [self._dir / f"part-{p:04d}.bin" for p in range(partitions)]
        try:
            self._writer = _core.WindowWriter([str(path) for path in paths], m, memory)
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise

    def add(self, offsets: np.ndarray, items: np.ndarray, threads: int = 0) -> None:
        """Spills the windows of one CSR batch (items must be consistent across batches),
        partitioned on ``threads`` threads (0: all cores); the files are the same for any number."""
        self._writer.add(offsets, items, self.max_len, threads)

    def histograms(self, workers: int = 2) -> BlockHistograms:
        """Counts every partition exactly, ``workers`` at a time, and adds up their histograms."""
        return BlockHistograms.from_arrays(*self._writer.histograms(max(1, workers)))

    def close(self) -> None:
        self._writer.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "WindowSpill":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
