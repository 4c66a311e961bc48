"""Data quality: exact-match approximate entropy, D′ and coding-length statistics.

ApEn (Pincus) of each user's item sequence with tolerance r = 0 (windows match
only when their items are identical) and embedding dimension m. The paper's
data measure is

    D′ = Σ_S |S| · ApEn′(S),   ApEn′ = 1 / |ApEn|,

summed over the sequences where ApEn′ is finite; the authors' published code
uses the pooled variant D′_pooled = tokens / mean |ApEn| instead. Both are
reported, under those names.

Per-user ApEn degenerates on data where no user repeats an item (it becomes
ln((N − m) / (N − m + 1)), a function of the length alone), so two
corpus-level figures are reported too: the conditional block entropy
H(X_{m+1} | X_1..X_m) over all windows of all users, and a Lempel-Ziv
entropy-rate estimate.

Every statistic is computed from per-user arrays and exact window counts, which
merge exactly across shards (``QualityParts.merge``); sums use ``math.fsum``,
so the result is bit-identical for any sharding and any thread count.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perflaw import _core
from perflaw.blocks import BlockHistograms, WindowSpill
from perflaw.ids import is_table
from perflaw.sequences import Sequences, combine_fingerprints, positive_int
from perflaw.errors import NotGroupedError, PerflawError, PerflawTypeError

# |ApEn| below this counts as zero, so that rounding cannot produce a huge ApEn′.
APEN_ZERO = 1e-12


# ---------------------------------------------------------------- arguments
def resolve_threads(threads: int | None) -> int:
    """The kernel thread count: the argument, else PERFLAW_NUM_THREADS, else all cores (0)."""
    if threads is None:
        env = os.environ.get("PERFLAW_NUM_THREADS", "").strip()
        if not env:
            return 0
        try:
            threads = int(env)
        except ValueError:
            raise PerflawError(f"PERFLAW_NUM_THREADS must be a positive integer, got {env!r}") from None
    return positive_int(threads, "threads", maximum=_core.MAX_THREADS)


# Longest max_len accepted: beyond any sequence a file can hold (and a signed 64-bit count).
MAX_LENGTH = 2**63 - 1


def check_m(m: Any) -> int:
    """The embedding dimension ``m`` as an int, checked (1 to ``_core.MAX_M``).

    Raises
    ------
    ValueError
        ``m`` is not a positive integer, or is beyond what the kernels take.

    Examples
    --------
    >>> check_m(3)
    3
    >>> check_m(0)
    Traceback (most recent call last):
    perflaw.errors.PerflawError: m must be >= 1, got 0
    """
    return positive_int(m, "m", maximum=_core.MAX_M)


def check_max_len(max_len: Any) -> int | None:
    """``max_len`` as an int (at least 1), or None for "every item".

    Examples
    --------
    >>> check_max_len(50), check_max_len(None)
    (50, None)
    """
    return None if max_len is None else positive_int(max_len, "max_len", maximum=MAX_LENGTH)


def as_sequences(data: Any, *, user: Any = "user", item: Any = "item", timestamp: Any = None) -> Sequences:
    """``Sequences`` from a Sequences, a path, a list of per-user item lists or a table.

    Parameters
    ----------
    data : Sequences, path, list of lists or table
        A table is a pandas or polars DataFrame, a pyarrow Table, RecordBatch
        or RecordBatchReader, an object with ``__arrow_c_stream__``, or a dict
        of columns, with one row per interaction (:meth:`Sequences.from_table`).
    user, item, timestamp : str, optional
        The columns of a table or of a CSV/Parquet file; ``timestamp`` orders
        each user's items (stable: ties keep row order).

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"u": [1, 1, 2], "i": [5, 6, 5], "t": [2, 1, 0]})
    >>> as_sequences(frame, user="u", item="i", timestamp="t").to_lists(original_ids=True)
    [[6, 5], [5]]
    """
    if isinstance(data, Sequences):
        return data
    if isinstance(data, (str, os.PathLike)):
        from perflaw.ingest import read_sequences

        return read_sequences(data, user=user, item=item, timestamp=timestamp)
    if isinstance(data, (list, tuple)):
        return Sequences.from_lists(data)
    if is_table(data):
        return Sequences.from_table(data, user=user, item=item, timestamp=timestamp)
    raise PerflawTypeError(
        "expected Sequences, a path, a list of lists or a table (pandas, polars, pyarrow, "
        f"an object with __arrow_c_stream__, a dict of columns), got {type(data).__name__}"
    )


def _int64_array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or (array.dtype.kind not in "iu" and array.size):
        raise PerflawTypeError(f"{name} must be a 1-D integer array, got {array.dtype} with shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.int64)


def _used_lengths(seqs: Sequences, max_len: int | None) -> np.ndarray:
    lengths = seqs.lengths
    return lengths if max_len is None else np.minimum(lengths, max_len)


# ------------------------------------------------------------ per-user ApEn
def apen(
    seqs: Any,
    m: int = 2,
    max_len: int | None = None,
    absolute: bool = False,
    threads: int | None = None,
    *,
    user: str = "user",
    item: str = "item",
    timestamp: str | None = None,
) -> np.ndarray:
    """Exact-match (r = 0) approximate entropy of every user's sequence.

    Parameters
    ----------
    seqs : Sequences, path, list of lists or table
        The users' item sequences; a table (pandas, polars, pyarrow, an
        Arrow stream) holds one row per interaction (see :func:`as_sequences`).
    m : int
        Embedding dimension (window length), at least 1.
    max_len : int, optional
        Compute on each user's last ``max_len`` items.
    absolute : bool
        Return |ApEn|, as the authors' code does. The signed value (default)
        is negative on sequences without repeats.
    threads : int, optional
        Kernel threads; defaults to PERFLAW_NUM_THREADS or all cores. The
        result does not depend on it.
    user, item, timestamp : str, optional
        The columns of a table or of a CSV/Parquet file (``timestamp`` orders each user's items).

    Returns
    -------
    numpy.ndarray
        One float64 per user, in user order (for a table: users in sorted id
        order); NaN where the sequence has at most ``m`` items.

    Examples
    --------
    >>> import perflaw
    >>> perflaw.apen([[1, 2, 1, 2, 1, 2], [1, 2]], m=2).round(4).tolist()
    [0.0201, nan]
    """
    seqs = as_sequences(seqs, user=user, item=item, timestamp=timestamp)
    values = _core.apen(
        seqs.offsets, seqs.items, check_m(m), check_max_len(max_len), resolve_threads(threads)
    )
    return np.abs(values) if absolute else values


def apen_prime(apen_values: np.ndarray) -> np.ndarray:
    """ApEn′ = 1/|ApEn|; NaN where ApEn is undefined or |ApEn| < 1e-12.

    Examples
    --------
    >>> apen_prime(np.array([-0.5, 0.0, np.nan])).tolist()
    [2.0, nan, nan]
    """
    magnitude = np.abs(np.asarray(apen_values, dtype=np.float64))
    out = np.full(magnitude.shape, np.nan)
    valid = magnitude >= APEN_ZERO  # False for NaN too
    out[valid] = 1.0 / magnitude[valid]
    return out


# -------------------------------------------------------- coding statistics
@dataclass(frozen=True)
class CodingStats:
    """Per-user minimum-coding-length statistics, in user order.

    Attributes
    ----------
    lengths : |S|, the length each statistic was computed on (after max_len).
    apen : signed ApEn(m).
    coding_bound : the lower bound |S| / |ApEn(S)| on the coding length (= |S|·ApEn′).
    lz_entropy_rate : ln|S| / mean_i Λ_i, the Lempel-Ziv entropy-rate estimate (nats per item).
    """

    lengths: np.ndarray
    apen: np.ndarray
    coding_bound: np.ndarray
    lz_entropy_rate: np.ndarray


def coding_stats(
    seqs: Any,
    m: int = 2,
    max_len: int | None = None,
    threads: int | None = None,
    *,
    user: str = "user",
    item: str = "item",
    timestamp: str | None = None,
) -> CodingStats:
    """Per-user coding-length bound and Lempel-Ziv entropy-rate estimate.

    ``seqs`` is what :func:`apen` takes (Sequences, a path, lists or a table
    with the ``user``, ``item`` and optional ``timestamp`` columns).

    Examples
    --------
    >>> import perflaw
    >>> stats = perflaw.coding_stats([[1, 2, 3, 4]], m=2)
    >>> float(stats.lz_entropy_rate[0]) == float(np.log(4))  # no repeats: every Λ_i is 1
    True
    """
    seqs = as_sequences(seqs, user=user, item=item, timestamp=timestamp)
    m, max_len, threads = check_m(m), check_max_len(max_len), resolve_threads(threads)
    lengths = _used_lengths(seqs, max_len)
    values = _core.apen(seqs.offsets, seqs.items, m, max_len, threads)
    lz_sums = _core.lz_lambda_sums(seqs.offsets, seqs.items, max_len, threads)
    return CodingStats(
        lengths=lengths,
        apen=values,
        coding_bound=lengths * apen_prime(values),
        lz_entropy_rate=_lz_rate(lengths, lz_sums),
    )


def _lz_rate(lengths: np.ndarray, lambda_sums: np.ndarray) -> np.ndarray:
    """E = N ln N / Σ Λ_i per sequence; NaN below two items."""
    out = np.full(len(lengths), np.nan)
    ok = lengths >= 2
    n = lengths[ok].astype(np.float64)
    out[ok] = n * np.log(n) / lambda_sums[ok].astype(np.float64)
    return out


# ------------------------------------------------------ mergeable summaries
@dataclass
class QualityParts:
    """Per-user arrays and exact window counts of one shard; ``merge`` is exact.

    Examples
    --------
    >>> import perflaw
    >>> seqs = perflaw.Sequences.from_lists([[1, 2, 1, 2], [3, 3, 4], [5, 6, 5]])
    >>> whole = QualityParts.compute(seqs)
    >>> parts = QualityParts.compute(seqs.select([0])).merge(QualityParts.compute(seqs.select([1, 2])))
    >>> parts.summarize().d_prime == whole.summarize().d_prime
    True
    """

    m: int
    max_len: int | None
    lengths: np.ndarray  # length used, after max_len
    raw_lengths: np.ndarray  # length before truncation
    apen: np.ndarray
    lz_sums: np.ndarray
    windows: Any = field(default=None)  # _core.WindowCounts or None
    fingerprint_states: list[tuple[int, int, int]] = field(default_factory=list)

    @classmethod
    def compute(
        cls,
        seqs: Sequences,
        m: int = 2,
        max_len: int | None = None,
        threads: int | None = None,
        block_entropy: bool = True,
    ) -> "QualityParts":
        """Statistics of one shard. Windows are counted on the raw item ids
        (``Sequences.stable_item_keys``), so shards with different dense
        relabellings merge correctly."""
        return cls.from_runs(seqs.offsets, seqs.stable_item_keys(), m, max_len, threads, block_entropy)

    @classmethod
    def from_runs(
        cls,
        offsets: np.ndarray,
        keys: np.ndarray,
        m: int = 2,
        max_len: int | None = None,
        threads: int | None = None,
        block_entropy: bool = True,
    ) -> "QualityParts":
        """Statistics of CSR sequences of raw item keys, as streamed without relabelling.

        Parameters
        ----------
        offsets : int64 array
            User ``u`` holds ``keys[offsets[u]:offsets[u + 1]]``.
        keys : int64 array
            Each token's raw item id (``Sequences.stable_item_keys``): every
            statistic depends only on which items are equal, so no dense
            relabelling is needed.
        m, max_len, threads, block_entropy
            As for :meth:`compute`.

        Examples
        --------
        >>> import perflaw
        >>> seqs = perflaw.Sequences.from_lists([[10, 20, 10, 20], [7, 7, 8]])
        >>> raw = QualityParts.from_runs(np.array([0, 4, 7]), np.array([10, 20, 10, 20, 7, 7, 8]))
        >>> raw.summarize() == QualityParts.compute(seqs).summarize()
        True
        """
        m, max_len, threads = check_m(m), check_max_len(max_len), resolve_threads(threads)
        offsets, keys = _int64_array(offsets, "offsets"), _int64_array(keys, "keys")
        apen_values, lz_sums, hashes = _core.user_stats(offsets, keys, m, max_len, threads)
        windows = None
        if block_entropy:
            windows = _core.WindowCounts(m)
            windows.update(offsets, keys, max_len, threads)
        raw_lengths = np.diff(offsets)
        return cls(
            m=m,
            max_len=max_len,
            lengths=raw_lengths if max_len is None else np.minimum(raw_lengths, max_len),
            raw_lengths=raw_lengths,
            apen=apen_values,
            lz_sums=lz_sums,
            windows=windows,
            fingerprint_states=[(int(hashes.sum(dtype=np.uint64)), len(raw_lengths), len(keys))],
        )

    def merge(self, other: "QualityParts") -> "QualityParts":
        """The parts of both shards, this one's users first."""
        return QualityParts.combine([self, other])

    @staticmethod
    def combine(parts: "list[QualityParts]") -> "QualityParts":
        """All shards' parts in the order given; window counts are merged into a new table.

        Parameters
        ----------
        parts : list of QualityParts
            Computed with the same ``m`` and ``max_len``, all with window
            counts or all without (``block_entropy=False``).

        Returns
        -------
        QualityParts
            The users of every part, in order; the fingerprint and every
            statistic equal those of the whole corpus computed at once.

        Raises
        ------
        ValueError
            No parts, or parts computed with different settings.

        Examples
        --------
        >>> import perflaw
        >>> seqs = perflaw.Sequences.from_lists([[1, 2, 1, 2], [3, 3, 4], [5, 6, 5]])
        >>> shards = [QualityParts.compute(seqs.select([i]), block_entropy=False) for i in range(3)]
        >>> QualityParts.combine(shards).summarize() == QualityParts.compute(seqs, block_entropy=False).summarize()
        True
        """
        if not parts:
            raise PerflawError("no parts to combine")
        first = parts[0]
        for part in parts[1:]:
            if (part.m, part.max_len) != (first.m, first.max_len):
                raise PerflawError(
                    f"cannot merge parts computed with m={first.m}, max_len={first.max_len} "
                    f"and m={part.m}, max_len={part.max_len}"
                )
            if (part.windows is None) != (first.windows is None):
                raise PerflawError("cannot merge parts with and without block-entropy window counts")
        windows = None
        if first.windows is not None:
            # one table from all parts' windows at once (merging one by one would copy the table each time)
            arrays = [part.windows.to_arrays() for part in parts]
            rows = np.concatenate([rows.reshape(-1) for rows, _ in arrays])
            windows = _core.WindowCounts.from_arrays(first.m, rows, np.concatenate([counts for _, counts in arrays]))
        lengths = np.concatenate([p.lengths for p in parts])
        untruncated = all(p.raw_lengths is p.lengths for p in parts)  # max_len None: one array, not two
        return QualityParts(
            m=first.m,
            max_len=first.max_len,
            lengths=lengths,
            raw_lengths=lengths if untruncated else np.concatenate([p.raw_lengths for p in parts]),
            apen=np.concatenate([p.apen for p in parts]),
            lz_sums=np.concatenate([p.lz_sums for p in parts]),
            windows=windows,
            fingerprint_states=[f for p in parts for f in p.fingerprint_states],
        )

    def summarize(self, block: BlockHistograms | None = None) -> "DataQuality":
        """The corpus summary of everything merged so far.

        Parameters
        ----------
        block : BlockHistograms, optional
            Block-entropy count histograms of the same corpus computed
            elsewhere (spilled to disk, or counted by prefix partition on other
            machines); they replace ``self.windows``. Without them the block
            entropy comes from ``self.windows``, and is None when the parts
            were computed with ``block_entropy=False``.

        Returns
        -------
        DataQuality

        Raises
        ------
        ValueError
            The parts hold no users.

        Examples
        --------
        >>> import perflaw
        >>> from perflaw.blocks import BlockHistograms
        >>> seqs = perflaw.Sequences.from_lists([[1, 2, 1, 2], [3, 3, 4, 3]])
        >>> lean = QualityParts.compute(seqs, block_entropy=False)  # per-user arrays only
        >>> lean.summarize().block_entropy is None
        True
        >>> block = BlockHistograms.from_counts(QualityParts.compute(seqs).windows)  # counted elsewhere
        >>> lean.summarize(block) == QualityParts.compute(seqs).summarize()
        True
        """
        return _summarize(self, block)


@dataclass(frozen=True)
class DataQuality:
    """Data-quality summary of a corpus of user sequences.

    ApEn statistics (means and medians) are over the users whose ApEn is
    defined (more than ``m`` items); ApEn′ statistics and ``d_prime`` are over
    the users whose ApEn′ is finite. ``excluded`` counts the users left out of
    D′: ``excluded_short`` (at most ``m`` items) plus ``excluded_zero``
    (|ApEn| < 1e-12, e.g. a constant sequence).
    """

    users: int
    tokens: int  # Σ |S| after max_len truncation
    raw_tokens: int  # before truncation
    m: int
    max_len: int | None
    apen_mean: float
    apen_median: float
    apen_abs_mean: float
    apen_abs_median: float
    apen_prime: float  # mean ApEn′
    apen_prime_median: float
    d_prime: float  # Σ |S|·ApEn′(S), the paper's formula
    d_prime_pooled: float  # tokens / mean |ApEn|, the authors' code
    excluded: int
    excluded_short: int
    excluded_zero: int
    lz_entropy_rate: float  # Σ N ln N / Σ Σ Λ_i over users with >= 2 items
    lz_entropy_rate_median: float  # median of the per-user estimates
    block_entropy: float | None  # H(X_{m+1} | X_1..X_m), nats; None when not computed
    block_windows: int | None
    block_distinct: int | None
    fingerprint: str
    perflaw_version: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None).

        Examples
        --------
        >>> import perflaw
        >>> perflaw.data_quality([[1, 2, 1, 2, 1]], m=1).to_dict()["users"]
        1
        """
        return {key: _json_number(value) for key, value in asdict(self).items()}


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _fsum(values: np.ndarray) -> float:
    """``math.fsum`` of the values (exact even where ``math.fsum`` would overflow midway),
    in Rust where they are all finite."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    total = _core.exact_sum(values)
    return math.fsum(values.tolist()) if total is None else total


def _partials(values: np.ndarray) -> np.ndarray:
    """Floats whose exact sum is that of ``values``, usually a handful: the ``_fsum`` of
    several such arrays put together is the ``_fsum`` of all their values, bit for bit."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    partials = _core.exact_partials(values)
    return values if partials is None else partials  # NaN, inf or overflow: math.fsum decides later


def _median(values: np.ndarray) -> float:
    """``np.median``'s value (NaN for none), by selection in Rust."""
    return _core.median(np.ascontiguousarray(values, dtype=np.float64))


@dataclass
class _Terms:
    """What the summary needs of some users: counts, exact partial sums, and the values
    whose medians it reports. Terms of disjoint users concatenate into the whole's."""

    users: int
    tokens: int
    raw_tokens: int
    defined: int  # users whose ApEn is defined
    valid: int  # users whose ApEn′ is finite
    lz_denominator: int  # Σ Σ Λ over users with two items or more
    sums: dict[str, np.ndarray]  # partials of Σ ApEn, Σ |ApEn|, Σ ApEn′, D′, Σ N ln N
    values: dict[str, np.ndarray]  # ApEn and LZ rate of each user that has one, for the medians

    @classmethod
    def of(cls, lengths: np.ndarray, raw_lengths: np.ndarray, apen_values: np.ndarray, lz_sums: np.ndarray) -> "_Terms":
        defined = ~np.isnan(apen_values)
        signed = apen_values[defined]
        magnitude = np.abs(signed)
        prime = apen_prime(apen_values)
        valid = ~np.isnan(prime)
        lz_ok = lengths >= 2
        lz_n = lengths[lz_ok].astype(np.float64)
        n_log_n = lz_n * np.log(lz_n)
        lz_used = lz_sums[lz_ok]
        return cls(
            users=len(lengths),
            tokens=int(lengths.sum()),
            raw_tokens=int(raw_lengths.sum()),
            defined=int(defined.sum()),
            valid=int(valid.sum()),
            lz_denominator=int(lz_used.sum()),
            sums={
                "apen": _partials(signed),
                "abs": _partials(magnitude),
                "prime": _partials(prime[valid]),
                "d_prime": _partials(lengths[valid] * prime[valid]),
                "n_log_n": _partials(n_log_n),
            },
            values={"apen": signed, "lz": n_log_n / lz_used.astype(np.float64)},
        )

    @staticmethod
    def concat(terms: "list[_Terms]") -> "_Terms":
        """The terms of all, in order; the parts' arrays are released as they are copied,
        so that memory peaks at the whole plus one kind of value, not twice the whole."""
        def joined(field: str, key: str) -> np.ndarray:
            arrays = [getattr(t, field).pop(key) for t in terms]
            return np.concatenate(arrays)

        keys = {field: list(getattr(terms[0], field)) for field in ("sums", "values")}
        return _Terms(
            users=sum(t.users for t in terms),
            tokens=sum(t.tokens for t in terms),
            raw_tokens=sum(t.raw_tokens for t in terms),
            defined=sum(t.defined for t in terms),
            valid=sum(t.valid for t in terms),
            lz_denominator=sum(t.lz_denominator for t in terms),
            sums={key: joined("sums", key) for key in keys["sums"]},
            values={key: joined("values", key) for key in keys["values"]},
        )


def _summarize(parts: QualityParts, block: BlockHistograms | None) -> DataQuality:
    """The summary of ``parts`` (see :meth:`QualityParts.summarize`)."""
    if block is None and parts.windows is not None:
        block = BlockHistograms.from_counts(parts.windows)
    terms = _Terms.of(parts.lengths, parts.raw_lengths, parts.apen, parts.lz_sums)
    return _finish(terms, parts.m, parts.max_len, block, combine_fingerprints(parts.fingerprint_states))


def _finish(terms: _Terms, m: int, max_len: int | None, block: BlockHistograms | None, fingerprint: str) -> DataQuality:
    """The DataQuality of the users whose terms these are."""
    from perflaw import __version__

    if terms.users == 0:
        raise PerflawError("no sequences: data quality needs at least one user")
    mean = lambda key, count: _fsum(terms.sums[key]) / count if count else math.nan  # noqa: E731
    abs_mean = mean("abs", terms.defined)
    magnitude = np.abs(terms.values["apen"])
    prime = 1.0 / magnitude[magnitude >= APEN_ZERO]  # apen_prime's values, where finite
    lz_users = len(terms.values["lz"])
    return DataQuality(
        users=terms.users,
        tokens=terms.tokens,
        raw_tokens=terms.raw_tokens,
        m=m,
        max_len=max_len,
        apen_mean=mean("apen", terms.defined),
        apen_median=_median(terms.values["apen"]),
        apen_abs_mean=abs_mean,
        apen_abs_median=_median(magnitude),
        apen_prime=mean("prime", terms.valid),
        apen_prime_median=_median(prime),
        d_prime=_fsum(terms.sums["d_prime"]),
        d_prime_pooled=terms.tokens / abs_mean if abs_mean >= APEN_ZERO else math.nan,
        excluded=terms.users - terms.valid,
        excluded_short=terms.users - terms.defined,
        excluded_zero=terms.defined - terms.valid,
        lz_entropy_rate=_fsum(terms.sums["n_log_n"]) / float(terms.lz_denominator) if lz_users else math.nan,
        lz_entropy_rate_median=_median(terms.values["lz"]),
        block_entropy=None if block is None else block.conditional_entropy(),
        block_windows=None if block is None else block.total,
        block_distinct=None if block is None else block.distinct,
        fingerprint=fingerprint,
        perflaw_version=__version__,
    )


# ------------------------------------------------------------- public entry
def data_quality(
    data: Any,
    m: int = 2,
    max_len: int | None = None,
    threads: int | None = None,
    *,
    block_entropy: bool = True,
    format: str = "auto",
    progress: bool | None = None,
    batch_rows: int = 2_000_000,
    **read_options: Any,
) -> DataQuality:
    """Data-quality summary (ApEn, D′, coding-length statistics) of a corpus.

    Parameters
    ----------
    data : Sequences, path, list of lists or table
        A path is streamed in batches of whole users with bounded memory. A
        table (pandas or polars DataFrame, pyarrow Table or RecordBatch, any
        object with ``__arrow_c_stream__``) holds one row per interaction in
        the columns named by ``user``, ``item`` and, optionally, ``timestamp``.
    m : int
        Embedding dimension of ApEn and of the block entropy.
    max_len : int, optional
        Use each user's last ``max_len`` items only (as a model with that context would).
    threads : int, optional
        Kernel threads; defaults to PERFLAW_NUM_THREADS or all cores. The
        result is identical for any value.
    block_entropy : bool
        Count every window of m + 1 items for the corpus-level conditional block
        entropy. Memory grows with the number of distinct windows.
    format, batch_rows, read_options
        How a path is read (see ``perflaw.ingest.iter_batches``). For a table
        only ``user``, ``item`` and ``timestamp`` apply (defaults "user",
        "item", None).
    progress : bool, optional
        Show a progress bar on stderr while streaming a path (default: when stderr is a terminal).

    Returns
    -------
    DataQuality

    Examples
    --------
    >>> import perflaw
    >>> q = perflaw.data_quality([[1, 2, 3, 4], [5, 6, 5, 6, 5]], m=2)
    >>> q.users, q.tokens, q.excluded
    (2, 9, 0)
    >>> expected = 4 / abs(np.log(2 / 3)) + 5 / abs(perflaw.apen([[5, 6, 5, 6, 5]])[0])
    >>> bool(np.isclose(q.d_prime, expected))
    True
    """
    if isinstance(data, (str, os.PathLike)):
        return _stream_summary(Path(data), m, max_len, threads, block_entropy, format, progress, batch_rows, read_options)
    if is_table(data):
        columns = {name: read_options.pop(name) for name in ("user", "item", "timestamp") if name in read_options}
        if read_options:
            raise PerflawTypeError(f"unknown option(s) {sorted(read_options)} for a table; known: user, item, timestamp")
        data = as_sequences(data, **columns)
    return QualityParts.compute(as_sequences(data), m, max_len, threads, block_entropy).summarize()


def _stream_summary(path, m, max_len, threads, block_entropy, format, progress, batch_rows, read_options):
    """Summary of a file read in batches of whole users, in bounded memory: of each
    batch only its summary terms are kept, and its windows go to a disk spill.

    The file is read once as if grouped by user; should a user come back after
    other users, the batches so far are dropped and it is read again, grouped
    externally."""
    import sys

    m, max_len = check_m(m), check_max_len(max_len)
    if progress is None:
        progress = sys.stderr.isatty()
    settings = dict(format=format, batch_rows=batch_rows, progress=progress, **read_options)
    try:
        return _summary_of_runs(path, m, max_len, threads, block_entropy, settings)
    except NotGroupedError:
        return _summary_of_runs(path, m, max_len, threads, block_entropy, {**settings, "grouped": False})


# Bytes of windows per spill partition (a window mostly takes 8): a worker
# holds about twice this while counting it.
_PARTITION_BYTES = 32 << 20
# Bytes of windows the spill holds in memory before it writes them to disk.
_SPILL_MEMORY = 64 << 20


def _spill_partitions(path: Path, settings: dict) -> int:
    """Enough partitions that each holds about _PARTITION_BYTES of windows (64 to 4,096)."""
    from perflaw.ingest import count_rows_hint

    rows = count_rows_hint(path, settings.get("format", "auto"))
    return int(min(4096, max(64, math.ceil(rows * 8 / _PARTITION_BYTES))))


def _summary_of_runs(path, m, max_len, threads, block_entropy, settings):
    from concurrent.futures import ThreadPoolExecutor

    from perflaw.ingest import iter_user_runs

    kernel_threads = resolve_threads(threads)  # 0: all cores
    batches = iter_user_runs(path, **settings)
    first = next(batches, None)  # the reader has checked the file by now
    if first is None:
        raise PerflawError(f"no sequences in {path}")
    parts: list[tuple[_Terms, tuple[int, int, int]]] = []
    with contextlib.ExitStack() as stack:
        spill = None
        if block_entropy:
            partitions = _spill_partitions(path, settings)
            spill = stack.enter_context(
                WindowSpill(m, max_len, partitions, tmp_dir=settings.get("tmp_dir"), memory=_SPILL_MEMORY)
            )
        # entered last, so left first: no batch is still being spilled when the spill closes
        worker = stack.enter_context(ThreadPoolExecutor(1))

        def count(batch) -> tuple[_Terms, tuple[int, int, int]]:
            """The summary's terms of one batch, and its fingerprint state: all that is kept of it."""
            if spill is not None:
                spill.add(batch.offsets, batch.keys, kernel_threads)
            part = QualityParts.from_runs(batch.offsets, batch.keys, m, max_len, threads, block_entropy=False)
            return _Terms.of(part.lengths, part.raw_lengths, part.apen, part.lz_sums), part.fingerprint_states[0]

        # One batch is counted (the kernels release the GIL) while the next is
        # read: at most two batches are in memory.
        counting = worker.submit(count, first)
        for batch in batches:
            parts.append(counting.result())
            counting = worker.submit(count, batch)
        parts.append(counting.result())
        block = None
        if spill is not None:
            block = spill.histograms(workers=kernel_threads or (os.cpu_count() or 1))
    terms = _Terms.concat([batch_terms for batch_terms, _ in parts])
    return _finish(terms, m, max_len, block, combine_fingerprints([state for _, state in parts]))
