"""pytest-benchmark groups for the streaming path: `python -m pytest benches/test_bench_stream.py --benchmark-only`.

Each group reads one generated file (2M tokens, users of 50 Zipf items, rows
contiguous) three ways: pyarrow's own read of the user and item columns into
numpy, and ``perflaw.data_quality(path)`` with the block entropy off and on, so
the table shows the ratios side by side. ``benches/bench_stream.py`` runs the
same comparison at 50M tokens, each case in a fresh process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_stream import SUFFIX, write_log  # noqa: E402

import perflaw  # noqa: E402

TOKENS = 2_000_000


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream")
    paths = {form: folder / f"log{suffix}" for form, suffix in SUFFIX.items()}
    for form, path in paths.items():
        write_log(path, form, TOKENS, 50)
    return paths


def read_parquet(path):
    for batch in pq.ParquetFile(path).iter_batches(batch_size=2_000_000, columns=["user", "item"]):
        batch.column(0).to_numpy(), batch.column(1).to_numpy()


def read_csv(path):
    table = pv.read_csv(path)
    table.column(0).to_numpy(), table.column(1).to_numpy()


def read_sasrec(path):
    options = (pv.ReadOptions(column_names=["line"]), pv.ParseOptions(delimiter="\t"),
               pv.ConvertOptions(column_types={"line": pa.string()}))
    for batch in pv.open_csv(path, *options):
        tokens = pc.split_pattern(batch.column(0), " ")
        pc.list_flatten(tokens).cast(pa.int64()).to_numpy(), pc.list_value_length(tokens).to_numpy()


PYARROW = {"parquet": read_parquet, "csv": read_csv, "sasrec": read_sasrec}


@pytest.mark.parametrize("form", sorted(SUFFIX))
def test_pyarrow_read(benchmark, logs, form):
    benchmark.group = f"stream {form} 2M tokens"
    benchmark.pedantic(PYARROW[form], args=(logs[form],), rounds=3)


@pytest.mark.parametrize("form", sorted(SUFFIX))
@pytest.mark.parametrize("block_entropy", [False, True], ids=["block off", "block on"])
def test_data_quality(benchmark, logs, form, block_entropy):
    benchmark.group = f"stream {form} 2M tokens"
    q = benchmark.pedantic(perflaw.data_quality, args=(logs[form],),
                           kwargs={"block_entropy": block_entropy, "threads": 2}, rounds=3)
    assert q.tokens == TOKENS
