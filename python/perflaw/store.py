"""The results store: one row per finished run, in SQLite, safe against crashes.

The sweep writes it; the law fitter and the report read it. It sits at the
bottom of the package so that readers need not import the sweep runner.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator, Mapping
from perflaw.errors import PerflawError, MissingFileError

STORE_NAME = "results.sqlite"
STORE_SCHEMA_VERSION = 1


class StoreError(PerflawError):
    """A results store that cannot be read: corrupt, not SQLite, or not perflaw's."""


class ResultStore:
    """SQLite store of finished runs, one row per run key; safe against crashes.

    Each record is one transaction, so a killed process leaves either the whole
    row or nothing; the primary key makes duplicates impossible.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> store = ResultStore(pathlib.Path(tempfile.mkdtemp()) / "results.sqlite")
    >>> store.record("abc", {"layers": 1, "ndcg@10": 0.1}, status="ok")
    >>> [row["ndcg@10"] for row in store.rows()]
    [0.1]
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # One connection for the store's life: closing the last connection to a
            # WAL database checkpoints it, which would cost a few ms per run.
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL keeps every committed run through a killed process
            # (only an OS crash can lose the last commits) and skips an fsync per run.
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._transaction() as db:
                self._check_ours(db)
                db.execute(
                    "CREATE TABLE IF NOT EXISTS runs (key TEXT PRIMARY KEY, status TEXT NOT NULL, "
                    "record TEXT NOT NULL, finished REAL NOT NULL)"
                )
                db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(STORE_SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a readable perflaw results store: {exc}") from None

    def _check_ours(self, db: sqlite3.Connection) -> None:
        """Refuses a database that holds anything but a perflaw store, before writing to it."""
        tables = sorted(name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        if not tables:
            return  # a new, empty file
        if set(tables) != {"meta", "runs"}:
            raise StoreError(f"{self.path} is an SQLite database but not a perflaw results store (it holds the "
                             f"tables {tables}); perflaw will not write into it: use another output folder")
        columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
        schema = db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        if columns != ["key", "status", "record", "finished"] or schema != (str(STORE_SCHEMA_VERSION),):
            raise StoreError(f"{self.path} is not a perflaw results store of schema {STORE_SCHEMA_VERSION} "
                             f"(runs columns {columns}, schema {schema[0] if schema else None})")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an error."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def record(self, key: str, row: Mapping[str, Any], status: str) -> None:
        """Stores one run; a later successful record replaces a failed one, never an ok one."""
        if status not in ("ok", "failed"):
            raise PerflawError(f"status must be 'ok' or 'failed', got {status!r}")
        text = json.dumps({**row, "run_key": key, "status": status}, default=_json_default, allow_nan=True)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "status=excluded.status, record=excluded.record, finished=excluded.finished "
                "WHERE runs.status != 'ok'",
                (key, status, text, time.time()),
            )

    def statuses(self) -> dict[str, str]:
        with self._transaction() as db:
            return dict(db.execute("SELECT key, status FROM runs").fetchall())

    def rows(self, include_failed: bool = True) -> list[dict[str, Any]]:
        """Every stored run as a dict; a row that is not valid JSON raises StoreError naming it."""
        with self._transaction() as db:
            raw = db.execute("SELECT key, status, record FROM runs ORDER BY finished, key").fetchall()
        rows = []
        for key, status, text in raw:
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise StoreError(f"{self.path}: the record of run {key} is corrupt ({exc})") from None
            if not isinstance(row, dict) or row.get("run_key") != key or row.get("status") != status:
                raise StoreError(f"{self.path}: the record of run {key} does not match its key or status")
            if include_failed or status == "ok":
                rows.append(row)
        return rows

    def frame(self, include_failed: bool = False):
        """The runs as a pandas DataFrame (one row per run), for the fitter and reports."""
        import pandas as pd

        return pd.DataFrame(self.rows(include_failed=include_failed))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def open_results(path: str | Path) -> ResultStore:
    """The store in ``path`` (a sweep folder or its results.sqlite); it must exist."""
    path = Path(path)
    if path.is_dir():
        path = path / STORE_NAME
    if not path.is_file():
        raise MissingFileError(f"no results store at {str(path)!r}")
    return ResultStore(path)
