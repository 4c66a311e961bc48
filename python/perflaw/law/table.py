"""Reading and checking the results table that the law is fitted to.

The sweep runner writes one row per finished run. This module turns such a
table (a DataFrame, or a CSV / JSONL / Parquet path) into :class:`LawData`:
float arrays for the law's variables and the metric, plus the bookkeeping the
fitter needs (which runs belong to one configuration, which data panel a run
belongs to, a size for leave-largest-out, a fingerprint of the data).

Every check raises ``ValueError`` naming the offending column or value, so a
bad table never turns into a silently wrong law.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from perflaw.law.options import DEFAULT_PANEL_BY  # the columns that define a data panel
from perflaw.errors import PerflawError, PerflawTypeError, MissingFileError

_CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_SQLITE_SUFFIXES = {".sqlite", ".db"}


def read_table(table: pd.DataFrame | str | Path) -> pd.DataFrame:
    """Load a results table from a DataFrame or a CSV, JSONL or Parquet path.

    Rows whose ``status`` column is not ``"ok"`` (failed runs) are dropped.

    Parameters
    ----------
    table : DataFrame or path
        ``.csv``/``.tsv``, ``.jsonl``/``.ndjson`` (one JSON object per line),
        ``.parquet``/``.pq``/``.parq``, or a sweep folder / its ``results.sqlite``.

    Returns
    -------
    pandas.DataFrame
        The finished runs.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"layers": [2, 4], "status": ["ok", "failed"]})
    >>> len(read_table(df))
    1
    """
    if isinstance(table, pd.DataFrame):
        frame = table.copy()
    elif isinstance(table, (str, Path)):
        frame = _read_path(Path(table))
    else:
        raise PerflawTypeError(
            f"table must be a pandas DataFrame or a path, got {type(table).__name__}"
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.columns.duplicated().any():
        dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise PerflawError(f"table has duplicate columns: {dupes}")
    if "status" in frame.columns:
        frame = frame[frame["status"].astype(str).str.lower() == "ok"]
    if len(frame) == 0:
        raise PerflawError("table has no finished runs (no rows, or no row with status 'ok')")
    return frame.reset_index(drop=True)


def _read_path(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise MissingFileError(f"results table not found: {path}")
    if not (path.is_dir() or path.is_file()):
        raise PerflawError(f"{path} is not a regular file (a pipe or a device): write the table to a file first")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in _SQLITE_SUFFIXES:
        # a sweep folder or its results store (perflaw.sweep owns the format)
        from perflaw.store import open_results

        return open_results(path).frame(include_failed=True)
    if suffix in _CSV_SUFFIXES:
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    if suffix in _JSONL_SUFFIXES:
        # precise_float: the default parser rounds the last digits of floats
        return pd.read_json(path, lines=True, precise_float=True)
    # The one list of Parquet suffixes, shared with the data readers (imported
    # here, not at the top: perflaw.ingest brings pyarrow, which CSV does not need).
    from perflaw.ingest import PARQUET_SUFFIXES

    if suffix in PARQUET_SUFFIXES:
        return pd.read_parquet(path)
    raise PerflawError(
        f"cannot read results table {str(path)!r}: unknown extension {suffix!r} "
        "(expected .csv, .tsv, .jsonl, .ndjson, .json, .parquet, .pq, .parq, .sqlite or a sweep folder)"
    )


@dataclass(frozen=True)
class LawData:
    """The runs a law is fitted to, as plain arrays.

    Attributes
    ----------
    X : dict of str to ndarray
        One float array per law variable (``N``, ``d``, ``D`` …), shape (n,).
    y : ndarray
        The metric (or loss) per run.
    metric : str
        Name of the metric column.
    columns : dict
        Variable name -> table column it was read from.
    config : ndarray
        Integer id of the configuration (panel and variables) of each run;
        runs of the same configuration differ only in their seed.
    panel : ndarray
        Integer id of the data panel (dataset × max length) of each run.
    panel_labels : tuple of str
        Label of each panel id.
    size : ndarray
        Model size per run, used to pick the "largest" models to hold out.
    source : DataFrame
        The checked table; ``frame`` gives the rows of this data in it.
    rows : ndarray
        Row of ``source`` for each run (repeats in a bootstrap sample).
    """

    X: dict[str, np.ndarray]
    y: np.ndarray
    metric: str
    columns: dict[str, str]
    config: np.ndarray
    panel: np.ndarray
    panel_labels: tuple[str, ...]
    size: np.ndarray
    source: pd.DataFrame = field(repr=False)
    rows: np.ndarray = field(repr=False)

    @property
    def n(self) -> int:
        return int(len(self.y))

    @property
    def n_configs(self) -> int:
        return int(len(np.unique(self.config)))

    @property
    def frame(self) -> pd.DataFrame:
        """The table rows of these runs, for context columns (model, n_items …)."""
        return self.source.iloc[self.rows].reset_index(drop=True)

    @property
    def fingerprint(self) -> str:
        """A short hash of the numbers the law is fitted to."""
        digest = hashlib.sha256()
        for name in sorted(self.X):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(self.X[name], dtype=np.float64).tobytes())
        digest.update(np.ascontiguousarray(self.y, dtype=np.float64).tobytes())
        digest.update("|".join(self.panel_labels).encode())
        digest.update(np.ascontiguousarray(self.panel, dtype=np.int64).tobytes())
        return digest.hexdigest()[:16]

    def distinct(self, variable: str) -> np.ndarray:
        return np.unique(self.X[variable])

    def subset(self, index: np.ndarray) -> "LawData":
        """The runs at ``index`` (repeats allowed, as in a bootstrap sample)."""
        index = np.asarray(index)
        return LawData(
            X={k: v[index] for k, v in self.X.items()},
            y=self.y[index],
            metric=self.metric,
            columns=self.columns,
            config=self.config[index],
            panel=self.panel[index],
            panel_labels=self.panel_labels,
            size=self.size[index],
            source=self.source,
            rows=self.rows[index],
        )


def resolve_metric(frame: pd.DataFrame, metric: str) -> str:
    """The column holding ``metric`` (case-insensitive), or a clear error."""
    if not isinstance(metric, str) or not metric.strip():
        raise PerflawTypeError(f"metric must be a non-empty string, got {metric!r}")
    name = metric.strip()
    if name in frame.columns:
        return name
    matches = [c for c in frame.columns if c.lower() == name.lower()]
    if len(matches) == 1:
        return matches[0]
    known = [c for c in frame.columns if "@" in c or c.lower() in ("loss", "mrr", "auc")]
    raise PerflawError(f"metric column {metric!r} not in the table; metric-like columns present: {known}")


def build_law_data(
    frame: pd.DataFrame,
    metric: str,
    candidates: Mapping[str, Sequence[str]],
    *,
    columns: Mapping[str, str] | None = None,
    panel_by: Sequence[str] = DEFAULT_PANEL_BY,
    positive: Sequence[str] | None = None,
) -> LawData:
    """Extract and check the variables and metric for a law.

    Parameters
    ----------
    frame : DataFrame
        Finished runs (see :func:`read_table`).
    metric : str
        Metric column (case-insensitive).
    candidates : mapping
        Variable name -> candidate column names, first present wins.
    columns : mapping, optional
        Explicit variable -> column choices that override ``candidates``.
    panel_by : sequence of str
        Columns defining a data panel; missing ones are ignored.
    positive : sequence of str, optional
        Variables that must be strictly positive (default: all).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"layers": [2, 4, 8], "ndcg@10": [0.1, 0.2, 0.25]})
    >>> data = build_law_data(df, "ndcg@10", {"N": ["layers"]})
    >>> data.X["N"].tolist(), data.n_configs
    ([2.0, 4.0, 8.0], 3)
    """
    metric_col = resolve_metric(frame, metric)
    chosen = _choose_columns(frame, candidates, columns or {})
    used = [metric_col, *chosen.values()]
    _check_numeric(frame, used)

    X = {var: frame[col].to_numpy(dtype=np.float64) for var, col in chosen.items()}
    y = frame[metric_col].to_numpy(dtype=np.float64)
    for var in positive if positive is not None else X:
        bad = np.flatnonzero(X[var] <= 0)
        if bad.size:
            raise PerflawError(
                f"variable {var} (column {chosen[var]!r}) must be positive, "
                f"found {float(X[var][bad[0]])!r} in row {int(bad[0])}"
            )

    panel, labels = _panels(frame, panel_by)
    config = _configs(X, panel)
    size = _model_size(frame, X)
    return LawData(
        X=X,
        y=y,
        metric=metric_col,
        columns=dict(chosen),
        config=config,
        panel=panel,
        panel_labels=labels,
        size=size,
        source=frame.reset_index(drop=True),
        rows=np.arange(len(frame)),
    )


def _choose_columns(
    frame: pd.DataFrame,
    candidates: Mapping[str, Sequence[str]],
    explicit: Mapping[str, str],
) -> dict[str, str]:
    unknown = sorted(set(explicit) - set(candidates))
    if unknown:
        raise PerflawError(
            f"columns= names variables {unknown} that this form does not use "
            f"(its variables: {sorted(candidates)})"
        )
    chosen: dict[str, str] = {}
    missing: list[str] = []
    for var, options in candidates.items():
        if var in explicit:
            col = str(explicit[var])
            if col not in frame.columns:
                raise PerflawError(f"column {explicit[var]!r} given for variable {var} is not in the table")
            chosen[var] = col
            continue
        found = next((c for c in options if c in frame.columns), None)
        if found is None:
            missing.append(f"{var} (looked for {', '.join(repr(c) for c in options)})")
        else:
            chosen[var] = found
    if missing:
        raise PerflawError(
            "table is missing columns for: " + "; ".join(missing)
            + f". Columns present: {list(frame.columns)}"
        )
    return chosen


def _check_numeric(frame: pd.DataFrame, cols: Sequence[str]) -> None:
    for col in cols:
        values = pd.to_numeric(frame[col], errors="coerce")
        non_numeric = values.isna() & frame[col].notna()
        if non_numeric.any():
            row = int(np.flatnonzero(non_numeric.to_numpy())[0])
            raise PerflawError(f"column {col!r} has a non-numeric value {frame[col].iloc[row]!r} in row {row}")
        arr = values.to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise PerflawError(
                f"column {col!r} has {bad.size} NaN or infinite value(s), first in row {int(bad[0])}"
            )
        frame[col] = arr


def _panels(frame: pd.DataFrame, panel_by: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    present = [c for c in panel_by if c in frame.columns]
    if not present:
        return np.zeros(len(frame), dtype=np.int64), ("all",)
    # Join the text of each distinct combination only (a long table repeats a few panels).
    codes, combos = pd.MultiIndex.from_frame(frame[present].astype(str)).factorize()
    labels, remap = np.unique(np.array(["|".join(combo) for combo in combos], dtype=object), return_inverse=True)
    return remap.reshape(-1)[codes].astype(np.int64), tuple(str(x) for x in labels)


def _configs(X: Mapping[str, np.ndarray], panel: np.ndarray) -> np.ndarray:
    stacked = np.column_stack([panel.astype(np.float64), *[X[k] for k in sorted(X)]])
    _, ids = np.unique(stacked, axis=0, return_inverse=True)
    return ids.reshape(-1).astype(np.int64)


def _model_size(frame: pd.DataFrame, X: Mapping[str, np.ndarray]) -> np.ndarray:
    """Model size for leave-largest-out: the real parameter count when the
    table has it, else N·d² (a transformer block has ~12·d² weights)."""
    if "params" in frame.columns:
        values = pd.to_numeric(frame["params"], errors="coerce").to_numpy(dtype=np.float64)
        if np.all(np.isfinite(values)):
            return values
    if "N" in X and "d" in X:
        return X["N"] * X["d"] ** 2
    first = sorted(X)[0]
    return X[first].copy()
