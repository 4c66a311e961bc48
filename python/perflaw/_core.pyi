"""Type stubs for the Rust extension ``perflaw._core``.

Every function takes CSR sequences: ``offsets`` (int64, users + 1, from 0 to
len(items), non-decreasing) and ``items`` (int64, any values; compared
exactly). ``threads=0`` uses all cores; results never depend on it. The GIL is
released while the kernels run. Bad offsets, ``m`` outside 1..MAX_M and more
than MAX_THREADS threads raise ValueError; an internal failure (a bug) raises
RuntimeError naming the function, never a PanicException.
"""

import numpy as np
import numpy.typing as npt

MAX_M: int  # largest m accepted (windows of m + 1 items)
MAX_THREADS: int  # most threads one call may ask for
MAX_PARTITIONS: int

def apen(
    offsets: npt.NDArray[np.int64],
    items: npt.NDArray[np.int64],
    m: int,
    max_len: int | None = None,
    threads: int = 0,
) -> npt.NDArray[np.float64]:
    """Signed exact-match ApEn(m) per sequence; NaN where a sequence has <= m items."""

def lz_lambda_sums(
    offsets: npt.NDArray[np.int64],
    items: npt.NDArray[np.int64],
    max_len: int | None = None,
    threads: int = 0,
) -> npt.NDArray[np.uint64]:
    """Sum over positions i of the Lempel-Ziv match length Lambda_i, per sequence."""

def sequence_hashes(
    offsets: npt.NDArray[np.int64],
    items: npt.NDArray[np.int64],
    threads: int = 0,
) -> npt.NDArray[np.uint64]:
    """Stable 64-bit hash of each sequence (items in order, and length)."""

def user_stats(
    offsets: npt.NDArray[np.int64],
    items: npt.NDArray[np.int64],
    m: int,
    max_len: int | None = None,
    threads: int = 0,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """(apen, lz_lambda_sums, sequence_hashes) in one visit of each sequence: the
    first two over each sequence's last ``max_len`` items, the hash over all of it."""

def median(values: npt.NDArray[np.float64]) -> float:
    """``numpy.median``'s value (NaN for no values or a NaN), selected in linear time."""

def exact_sum(values: npt.NDArray[np.float64], threads: int = 0) -> float | None:
    """The exactly rounded sum (``math.fsum``'s value, also where ``math.fsum`` overflows
    midway), the same for any ``threads``; None when a value is NaN or infinite or the sum
    itself overflows (``math.fsum`` decides those)."""

def exact_partials(values: npt.NDArray[np.float64], threads: int = 0) -> npt.NDArray[np.float64] | None:
    """A few floats whose exactly rounded sum is that of ``values``, also after concatenating
    several such arrays; None when a value is NaN or infinite or the sum overflows."""

def partition_windows(
    offsets: npt.NDArray[np.int64],
    items: npt.NDArray[np.int64],
    m: int,
    partitions: int,
    max_len: int | None = None,
    threads: int = 0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint64]]:
    """Every window of m + 1 items as rows, grouped by a hash of the m-item prefix
    (the partitioner of ``partition_keys``), and the partitions + 1 group bounds.
    Equal prefixes always share a group."""

def window_histograms(
    windows: npt.NDArray[np.int64], m: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Histograms of a bag of windows (flattened rows of m + 1 ids), as WindowCounts.histograms()."""

def histogram_entropy(
    joint_counts: npt.NDArray[np.uint64],
    joint_windows: npt.NDArray[np.uint64],
    prefix_counts: npt.NDArray[np.uint64],
    prefix_windows: npt.NDArray[np.uint64],
) -> float:
    """H(X_{m+1} | X_1..X_m) in nats from count histograms (as ``WindowCounts.histograms()``
    returns them, in any order); NaN without windows. The sums are exactly rounded
    (as ``math.fsum``), so equal histograms always give the same bits."""

def partition_keys(keys: npt.NDArray[np.int64], partitions: int) -> npt.NDArray[np.int64]:
    """The partition in ``0..partitions - 1`` of each int64 key (a user id), by a stable
    hash (murmur3's finaliser, scaled by the high bits): the one partitioner, shared with
    ``partition_windows`` (a key is a prefix of length 1)."""

def partition_strings(
    offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], partitions: int
) -> npt.NDArray[np.int64]:
    """The partition of each string of an Arrow-style string array (string ``i`` is the
    UTF-8 ``data[offsets[i]:offsets[i + 1]]``), by a stable hash of its bytes (FNV-1a, mixed)."""

class WindowWriter:
    """Windows of m + 1 items grouped by prefix partition (a window's partition is
    the index of its path): held in memory up to ``memory`` bytes, then appended
    to the partitions' files (temporary, native-endian 64-bit words)."""

    def __init__(self, paths: list[str], m: int, memory: int = 0) -> None: ...
    def add(
        self,
        offsets: npt.NDArray[np.int64],
        items: npt.NDArray[np.int64],
        max_len: int | None = None,
        threads: int = 0,
    ) -> None:
        """Adds every window of a CSR batch."""
    def histograms(
        self, threads: int = 0
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        """Counts each partition on its own: (joint_counts, joint_windows, prefix_counts, prefix_windows)."""
    def close(self) -> None:
        """Closes the files; later calls raise ValueError."""

class WindowCounts:
    """Exact counts of every window of m + 1 items; merges exactly across shards."""

    def __init__(self, m: int) -> None: ...
    @property
    def m(self) -> int: ...
    @property
    def total(self) -> int:
        """Number of windows counted."""
    @property
    def distinct(self) -> int:
        """Number of distinct windows."""
    def update(
        self,
        offsets: npt.NDArray[np.int64],
        items: npt.NDArray[np.int64],
        max_len: int | None = None,
        threads: int = 0,
    ) -> None: ...
    def merge(self, other: WindowCounts) -> None: ...
    def conditional_entropy(self) -> float:
        """H(X_{m+1} | X_1..X_m) in nats; NaN when empty (``histogram_entropy`` of ``histograms()``)."""
    def histograms(
        self,
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        """(joint_counts, joint_windows, prefix_counts, prefix_windows): for each count value
        (sorted), how many distinct (m+1)-windows and m-prefixes have it."""
    def to_arrays(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint64]]:
        """(windows of shape (distinct, m + 1), sorted by row; counts)."""
    @staticmethod
    def from_arrays(
        m: int, windows: npt.NDArray[np.int64], counts: npt.NDArray[np.uint64]
    ) -> WindowCounts:
        """Rebuilds a table from flattened ``to_arrays`` output; repeated rows add up."""
