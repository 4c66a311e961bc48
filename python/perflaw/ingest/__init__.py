"""Reading interaction logs into :class:`~perflaw.sequences.Sequences`.

Two entry points share one set of per-format readers:

* :func:`read_sequences` reads a whole file into memory;
* :func:`iter_batches` streams a file of any size in batches of *whole users*
  with bounded memory, for corpus statistics that merge over batches.

Every reader produces *rows* in file order (one interaction each: user, item and
an optional timestamp); rows are then grouped into users. Parsing is vectorised
(pyarrow's CSV engine and NumPy), never one Python call per token; the slow
line-by-line scans run only after a fast parse has failed, to name the
offending line in the error message.

The modules, bottom up: ``checks`` and ``spec`` (arguments), ``compression``
and ``text`` (bytes of text files), ``rows`` and ``contiguity`` (rows in file
order), one reader per format family (``tokens``: sasrec and pairs,
``movielens``, ``delimited``: csv, ``inter``: RecBole, ``parquet``),
``readers`` (the dispatch), ``detect``, ``spill`` (hash partitions on disk),
``streaming`` and ``reading`` (the entry points), and ``writers``
(:func:`write_sequences`, the way back to files). Ids are typed by
:mod:`perflaw.ids` and rows grouped by :mod:`perflaw.grouping`, which
``Sequences.from_table`` uses as well.
"""

from __future__ import annotations

from perflaw.ingest.checks import FORMATS, ID_MODES
from perflaw.ingest.detect import count_rows_hint, detect_format
from perflaw.ingest.parquet import PARQUET_SUFFIXES
from perflaw.ingest.reading import iter_batches, iter_user_runs, read_sequences
from perflaw.ingest.rows import UserRuns
from perflaw.ingest.writers import WRITE_FORMATS, write_sequences

__all__ = ["FORMATS", "WRITE_FORMATS", "read_sequences", "write_sequences", "iter_batches", "iter_user_runs", "UserRuns", "detect_format", "count_rows_hint"]
