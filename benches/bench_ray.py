"""perflaw.cluster.data_quality throughput on a local Ray cluster: 1 worker node against 2,
and its overhead against the local engine on the same data, measured side by side.

The corpus is synthetic (perflaw.synth), dealt row by row at random into 8
Parquet shards, so most users span several shards and the user shuffle has
real work to do. The same rows, concatenated in shard order, are one Parquet
file for the local engine (``perflaw.data_quality(path)``, streamed) and one
in-memory table (``perflaw.data_quality(Sequences.from_table(...))``).

The cluster is a head with no CPUs (it schedules, it does not compute) and
one worker node with one CPU; after the 1-worker measurements a second worker
node joins. Each configuration is warmed up once (worker processes start and
import perflaw), then timed ``--repeats`` times, interleaved with the local
engine so that both see the same machine load. Every Ray result is checked
against the local one.

    python benches/bench_ray.py                  # 200k users, ~2.5M interactions
    python benches/bench_ray.py --users 50000 --repeats 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SHARDS = 8


def make_shards(folder: Path, users: int, items: int, seed: int) -> tuple[list[Path], Path, int]:
    from perflaw import synth

    seqs = synth.generate(synth.SynthConfig(users=users, items=items, seed=seed))
    table = pa.table({
        "user": np.repeat(seqs.user_ids, seqs.lengths).astype(np.int64),
        "item": seqs.item_vocab[seqs.items - 1].astype(np.int64),
    })
    shard = np.random.default_rng(seed).integers(0, SHARDS, table.num_rows)
    paths = []
    for s in range(SHARDS):
        path = folder / f"part-{s:02d}.parquet"
        pq.write_table(table.filter(pa.array(shard == s)), path)
        paths.append(path)
    whole = folder / "all.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(p) for p in paths]), whole)
    return paths, whole, table.num_rows


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def same(a, b) -> bool:
    for key, x in a.to_dict().items():
        y = b.to_dict()[key]
        if isinstance(x, float) and isinstance(y, float):
            if not math.isclose(x, y, rel_tol=1e-12, abs_tol=0.0):
                return False
        elif x != y:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--m", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--object-store-mb", type=int, default=1000, help="object store of each node")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args(argv)

    import ray

    import perflaw
    from perflaw import cluster
    from perflaw.sequences import Sequences
    from test_ray import LocalRayCluster

    load_before = os.getloadavg()[0]
    folder = Path(tempfile.mkdtemp(prefix="perflaw-bench-ray-"))
    print(f"generating {args.users:,} users into {SHARDS} shards in {folder} ...", flush=True)
    shards, whole, rows = make_shards(folder, args.users, args.items, args.seed)
    table = pq.read_table(whole)
    print(f"{rows:,} interactions; {os.cpu_count()} CPU cores on this machine", flush=True)

    def local_file():
        return perflaw.data_quality(whole, m=args.m, progress=False)

    def local_memory():
        return perflaw.data_quality(Sequences.from_table(table), m=args.m)

    def on_ray():
        return cluster.data_quality([str(p) for p in shards], m=args.m, progress=False)

    local = LocalRayCluster(workers=1, cpus=1, head_cpus=0, object_store_bytes=args.object_store_mb * 10**6)
    results: dict[str, dict[str, list[float]]] = {}
    try:
        local.start()
        ray.init(address=local.address, logging_level="WARNING")
        for workers in (1, 2):
            if workers == 2:
                local.add_worker(1)
            local.wait_for_nodes(1 + workers)
            warm_s, warm = timed(on_ray)
            reference = local_file()
            assert same(warm, reference), "the Ray result differs from the local engine"
            times = {"ray": [], "local_file": [], "local_memory": []}
            for _ in range(args.repeats):
                for name, fn in (("ray", on_ray), ("local_file", local_file), ("local_memory", local_memory)):
                    seconds, result = timed(fn)
                    assert same(result, reference)
                    times[name].append(seconds)
            times["ray_warmup"] = [warm_s]
            results[f"{workers} worker"] = times
            print(f"{workers} worker node(s): ray {statistics.median(times['ray']):.2f}s, "
                  f"local file {statistics.median(times['local_file']):.2f}s (warm-up {warm_s:.1f}s)", flush=True)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        local.stop()

    print()
    load_after = os.getloadavg()[0]
    print(f"data_quality over {SHARDS} Parquet shards, {rows:,} interactions, {args.users:,} users, m={args.m}; "
          f"median of {args.repeats}; {os.cpu_count()} cores, 1-minute load average {load_before:.1f} before, "
          f"{load_after:.1f} after")
    print("| workers | ray (s) | rows/s on ray | local file (s) | local in-memory (s) | ray / local file "
          "| ray / local in-memory |")
    print("|---|---|---|---|---|---|---|")
    for label, times in results.items():
        ray_s = statistics.median(times["ray"])
        file_s = statistics.median(times["local_file"])
        memory_s = statistics.median(times["local_memory"])
        print(f"| {label} | {ray_s:.2f} | {rows / ray_s:,.0f} | {file_s:.2f} | {memory_s:.2f} | "
              f"{ray_s / file_s:.1f}x | {ray_s / memory_s:.1f}x |")
    one, two = (statistics.median(results[k]["ray"]) for k in ("1 worker", "2 worker"))
    print(f"\nspeed-up from 1 to 2 worker nodes: {one / two:.2f}x")
    if args.json:
        record = {"rows": rows, "users": args.users, "m": args.m, "shards": SHARDS,
                  "load_average": [load_before, load_after], "seconds": results}
        Path(args.json).write_text(json.dumps(record, indent=2))
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
