"""Sweeps: spec checking, the store, resuming after kill -9, failures, and the demo end to end."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from perflaw import sweep
from perflaw.cli import main as cli

TINY_TRAIN = {"epochs": 1, "device": "cpu", "batch_size": 64, "warmup_steps": 1, "patience": None}


def tiny_spec(**grid) -> dict:
    return {
        "name": "tiny",
        "datasets": [{"name": "s", "synth": {"users": 60, "items": 30, "seed": 1}}],
        "grid": {"layers": [1], "dim": [4, 8], **grid},
        "data": {"max_len": [8]},
        "train": dict(TINY_TRAIN),
    }


# ------------------------------------------------------------------ specs
@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda s: s.update(colour="red"), ValueError, "unknown key.*colour"),
        (lambda s: s["grid"].update(width=[1]), ValueError, "unknown key.*width"),
        (lambda s: s["train"].update(learning_rate=1.0), ValueError, "unknown key.*learning_rate"),
        (lambda s: s["train"].update(layers=3), ValueError, "cannot set"),
        (lambda s: s["grid"].update(dim=[]), ValueError, "empty list"),
        (lambda s: s["grid"].update(layers=[1, 1]), ValueError, "repeats"),
        (lambda s: s["data"].update(fractions=[0.0]), ValueError, "fractions"),
        (lambda s: s["grid"].update(model=["gpt5"]), ValueError, "impossible run"),
        (lambda s: s["data"].update(max_len=[1]), ValueError, "impossible run"),
        (lambda s: s.update(datasets=[]), ValueError, "datasets"),
        (lambda s: s["datasets"].append({"name": "f", "path": "/no/such/file.txt"}), FileNotFoundError, "does not exist"),
        (lambda s: s["datasets"].append({"name": "s", "synth": {}}), ValueError, "unique"),
        (lambda s: s["datasets"].append({"name": "x", "synth": {"users": -1}}), ValueError, "users"),
        (lambda s: s["datasets"].append({"name": "y"}), ValueError, "exactly one of"),
        (lambda s: s["train"].update(device="tpu"), ValueError, "unknown device 'tpu'"),
        (lambda s: s.update(quality={"m": 2.7}), TypeError, "m must be an integer, got 2.7"),
        (lambda s: s.update(quality={"m": 2**64}), ValueError, "m must be at most"),
        (lambda s: s["data"].update(seed=1.5), TypeError, "data.seed must be an integer"),
        (lambda s: s.update(name="../../x"), ValueError, "names the output folder"),
        (lambda s: s.update(name="a/b"), ValueError, "names the output folder"),
    ],
)
def test_bad_specs_are_rejected_before_training(change, error, match):
    spec = tiny_spec()
    change(spec)
    with pytest.raises(error, match=match):
        sweep.load_spec(spec)


def test_toml_spec_and_relative_paths(tmp_path):
    (tmp_path / "data.txt").write_text("1 1 2 3 4 5\n2 2 3 4 5 6\n3 1 3 5 2 4\n")
    (tmp_path / "spec.toml").write_text(textwrap.dedent("""
        name = "t"
        seeds = [0, 1]
        [[datasets]]
        name = "file"
        path = "data.txt"
        [grid]
        layers = [1]
        dim = [4]
        [data]
        max_len = [4]
        [train]
        epochs = 1
        device = "cpu"
    """))
    spec = sweep.load_spec(tmp_path / "spec.toml")
    assert spec.datasets[0].path == str((tmp_path / "data.txt").resolve())
    assert [r.config.seed for r in sweep.expand(spec)] == [0, 1]
    (tmp_path / "bad.toml").write_text("name = [unclosed")
    with pytest.raises(ValueError, match="not valid TOML"):
        sweep.load_spec(tmp_path / "bad.toml")


def test_paper_preset_is_the_paper_grid():
    runs = sweep.expand(sweep.load_spec(sweep.preset("paper", [{"name": "s", "synth": {"users": 50}}])))
    sizes = {(r.config.layers, r.config.dim) for r in runs}
    assert sizes == {(n, d) for n in (4, 8, 12, 16, 24, 32) for d in (25, 50, 75, 100)}
    assert {r.config.loss for r in runs} == {"bce"} and {r.config.resolved_eval_negatives for r in runs} == {2499}


# ------------------------------------------------------------------ store
def test_store_never_duplicates_and_keeps_ok_over_failed(tmp_path):
    store = sweep.ResultStore(tmp_path / "r.sqlite")
    store.record("k1", {"x": 1}, "failed")
    store.record("k1", {"x": 2}, "ok")
    store.record("k1", {"x": 3}, "failed")  # an ok run is never overwritten
    store.record("k2", {"x": 4}, "ok")
    rows = store.rows()
    assert sorted((r["run_key"], r["x"], r["status"]) for r in rows) == [("k1", 2, "ok"), ("k2", 4, "ok")]


def test_corrupt_store_and_rows_are_reported(tmp_path):
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(sweep.StoreError, match="not a readable perflaw results store"):
        sweep.ResultStore(garbage)
    store = sweep.ResultStore(tmp_path / "r.sqlite")
    store.record("good", {"x": 1}, "ok")
    with sqlite3.connect(store.path) as db:
        db.execute("INSERT INTO runs VALUES ('bad', 'ok', '{\"run_key\": \"bad\", \"sta', 0)")
    with pytest.raises(sweep.StoreError, match="record of run bad is corrupt"):
        store.rows()
    with pytest.raises(FileNotFoundError):
        sweep.open_results(tmp_path / "missing")


# ----------------------------------------------------------------- runner
def test_rerun_skips_finished_runs_and_failures_are_recorded(tmp_path):
    spec = sweep.load_spec(tiny_spec())
    calls = []

    def flaky_train(seqs, config, progress, checkpoint_dir):
        calls.append(config.dim)
        if config.dim == 8 and calls.count(8) == 1:
            raise RuntimeError("out of memory (simulated)")
        from perflaw.training import train

        return train(seqs, config, progress=False, checkpoint_dir=checkpoint_dir)

    first = sweep.run_sweep(spec, tmp_path, progress=False, train_fn=flaky_train, log=lambda _: None)
    assert (first.finished, first.failed) == (1, 1)
    failed = [r for r in sweep.open_results(tmp_path).rows() if r["status"] == "failed"]
    assert len(failed) == 1 and "out of memory" in failed[0]["error"]
    second = sweep.run_sweep(spec, tmp_path, progress=False, train_fn=flaky_train, log=lambda _: None)
    assert (second.skipped, second.finished, second.failed) == (1, 1, 0)
    rows = sweep.open_results(tmp_path).rows()
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert {r["dim"] for r in rows} == {4, 8} and all(r["d_prime"] > 0 for r in rows)
    assert calls == [4, 8, 8]


# -------------------------------------------------------------- executors
# Row fields that measure this run's speed or memory, not what it computed.
TIMINGS = {"wall_s", "train_s", "tokens_per_s", "eval_users_per_s", "peak_memory_bytes"}


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def stored(out) -> dict:
    return {r["run_key"]: without_timings(r) for r in sweep.open_results(out).rows()}


class ReversedInAThread(sweep.Executor):
    """Holds every run until all are submitted, then trains them in reverse order in a worker thread."""

    label = "a thread"

    def __init__(self):
        self.jobs, self.started_with, self.closed = [], None, False

    def start(self, runs):
        self.started_with = len(runs)

    def submit(self, job):
        self.jobs.append(job)

    def finished(self, block):
        if not block or not self.jobs:
            return
        done = queue.Queue()
        jobs, self.jobs = self.jobs[::-1], []
        worker = threading.Thread(target=lambda: [done.put((job, job.execute())) for job in jobs])
        worker.start()
        for _ in jobs:
            yield done.get(timeout=300)
        worker.join()

    def close(self):
        self.closed = True


def fails_at_dim_8(seqs, config, progress, checkpoint_dir):
    if config.dim == 8:
        raise RuntimeError("loss diverged (simulated)")
    from perflaw.training import train

    return train(seqs, config, progress=False, checkpoint_dir=checkpoint_dir)


def test_a_custom_executor_records_the_same_store_as_the_local_one(tmp_path):
    spec = sweep.load_spec(tiny_spec(dim=[4, 8, 12]))
    local = sweep.run_sweep(spec, tmp_path / "local", progress=False, train_fn=fails_at_dim_8, log=lambda _: None)
    executor, lines = ReversedInAThread(), []
    custom = sweep.run_sweep(spec, tmp_path / "custom", progress=False, train_fn=fails_at_dim_8, log=lines.append,
                             executor=executor)
    assert executor.started_with == 3 and executor.closed
    assert [re.search(r" d=(\d+)", line).group(1) for line in lines] == ["12", "8", "4"]  # really reversed
    assert "FAILED RuntimeError: loss diverged" in lines[1]
    for summary in (local, custom):
        assert (summary.total, summary.finished, summary.failed, summary.skipped) == (3, 2, 1, 0)
    assert custom.variants == local.variants
    assert stored(tmp_path / "custom") == stored(tmp_path / "local")
    assert len(stored(tmp_path / "local")) == 3
    failed = [r for r in stored(tmp_path / "custom").values() if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["dim"] == 8 and "loss diverged" in failed[0]["error"]
    assert (tmp_path / "custom" / "spec.json").read_text() == (tmp_path / "local" / "spec.json").read_text()
    # Resuming through the custom executor submits only the failed run.
    again = ReversedInAThread()
    summary = sweep.run_sweep(spec, tmp_path / "custom", progress=False, log=lambda _: None, executor=again)
    assert (summary.skipped, summary.finished, summary.failed) == (2, 1, 0)
    rows = stored(tmp_path / "custom")
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows.values())


class Died(sweep.Executor):
    """Every run's worker 'dies': the outcome is built by the driver (RunJob.failure)."""

    def __init__(self):
        self.done = []

    def submit(self, job):
        self.done.append((job, job.failure("WorkerCrashedError: the worker died")))

    def finished(self, block):
        while self.done:
            yield self.done.pop(0)


def test_runs_an_executor_lost_are_recorded_as_failed_with_their_data_columns(tmp_path):
    spec = sweep.load_spec(tiny_spec())
    summary = sweep.run_sweep(spec, tmp_path, progress=False, log=lambda _: None, executor=Died())
    assert (summary.finished, summary.failed) == (0, 2)
    rows = sweep.open_results(tmp_path).rows()
    assert {r["status"] for r in rows} == {"failed"} and {r["dim"] for r in rows} == {4, 8}
    assert all(r["error"] == "WorkerCrashedError: the worker died" and r["d_prime"] > 0 for r in rows)


def test_an_executor_is_closed_however_the_sweep_ends(tmp_path):
    spec = sweep.load_spec(tiny_spec())
    closed = []

    class Refuses(sweep.LocalExecutor):
        def start(self, runs):
            raise ValueError(f"no room for {len(runs)} runs")

        def close(self):
            closed.append("refused")

    with pytest.raises(ValueError, match="no room for 2 runs"):
        sweep.run_sweep(spec, tmp_path / "refused", progress=False, executor=Refuses())
    assert not (tmp_path / "refused").exists() and closed == ["refused"]

    class Interrupted(sweep.LocalExecutor):
        def close(self):
            closed.append("interrupted")

    def interrupt_at_dim_8(seqs, config, progress, checkpoint_dir):
        if config.dim == 8:
            raise KeyboardInterrupt
        return fails_at_dim_8(seqs, config, progress, checkpoint_dir)

    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(spec, tmp_path / "stopped", progress=False, train_fn=interrupt_at_dim_8, log=lambda _: None,
                        executor=Interrupted())
    assert closed == ["refused", "interrupted"]
    assert [r["dim"] for r in sweep.open_results(tmp_path / "stopped").rows()] == [4]  # the finished run is kept


KILLABLE = """
import sys, time
from perflaw import sweep
from perflaw.training import train

def slow_train(seqs, config, progress, checkpoint_dir):
    print("START", config.dim, flush=True)
    if config.dim == 8:
        time.sleep(60)  # killed here
    return train(seqs, config, progress=False, checkpoint_dir=checkpoint_dir)

spec = sweep.load_spec({spec!r})
sweep.run_sweep(spec, {out!r}, progress=False, train_fn=slow_train if len(sys.argv) > 1 else None,
                log=lambda line: print(line, flush=True))
print("DONE", flush=True)
"""


def test_kill_9_mid_sweep_then_resume_records_every_run_once(tmp_path):
    spec = tiny_spec(dim=[4, 8, 12])
    script = tmp_path / "run.py"
    script.write_text(KILLABLE.format(spec=spec, out=str(tmp_path / "out")))
    proc = subprocess.Popen([sys.executable, str(script), "slow"], stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("START 8"):
                break
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len(sweep.open_results(tmp_path / "out").rows()) == 1  # only the run before the kill
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert "DONE" in done.stdout, done.stderr
    rows = sweep.open_results(tmp_path / "out").rows()
    assert sorted(r["dim"] for r in rows) == [4, 8, 12]
    assert len({r["run_key"] for r in rows}) == 3 and all(r["status"] == "ok" for r in rows)


# ------------------------------------------------------------------- demo
def test_demo_end_to_end_writes_a_valid_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli(["demo", "--size", "tiny", "--out", str(out), "--no-progress", "--n-boot", "5"]) == 0
    printed = capsys.readouterr().out
    assert "D′" in printed and "report.html" in printed
    report = out / "report"
    html = (report / "report.html").read_text()
    pngs = sorted((report / "figures").glob("*.png"))
    svgs = sorted((report / "figures").glob("*.svg"))
    assert pngs and svgs
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.name in html
    for svg in svgs:
        assert ET.parse(svg).getroot().tag.endswith("svg")
        assert svg.name in html
    rows = json.loads((report / "results.json").read_text())
    assert len(rows) == 27 and {r["dataset"] for r in rows} == {"a-100-users", "b-200-users", "c-400-users"}
    assert "layers" in (report / "results.csv").read_text().splitlines()[0]
    # the demo leads with one answer per dataset, smallest log first, and gives the
    # same answers as `perflaw fit` on its results
    answers = printed[printed.index("Recommendations (ndcg@10):"):].splitlines()[1:4]
    assert [a.split(" ")[2] for a in answers] == ["a-100-users", "b-200-users", "c-400-users"]
    demo_json = json.loads((report / "fit.json").read_text())
    assert cli(["fit", str(out), "--n-boot", "5", "--json"]) == 0
    fit_json = json.loads(capsys.readouterr().out)
    for label, panel in demo_json["panels"].items():
        assert fit_json["panels"][label]["recommendation"] == panel["recommendation"]
    # a second demo reuses every finished run; with --json stdout holds the result alone
    assert cli(["demo", "--size", "tiny", "--out", str(out), "--no-progress", "--n-boot", "5", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["sweep"]["finished"], again["sweep"]["skipped"]) == (0, 27)
    assert again["answers"]["panels"].keys() == demo_json["panels"].keys()


SPECS = Path(__file__).resolve().parents[1] / "docs" / "specs"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.parametrize("name, runs", [("paper-amazon", 144), ("full-amazon", 144), ("reduced-gpu", 12),
                                        ("validation-beauty", 24), ("validation-toys", 24), ("validation-dropout", 8)])
def test_reproduction_specs_load(name, runs):
    if not (SHARED_DATA / "beauty.txt").exists():
        pytest.skip("../shared/data is not present")
    spec = sweep.load_spec(SPECS / f"{name}.toml")
    assert len(sweep.expand(spec)) == runs


def test_movielens_spec_names_the_missing_file():
    with pytest.raises(FileNotFoundError, match="ratings.dat"):
        sweep.load_spec(SPECS / "paper-ml1m.toml")


# ---------------------------------------------------------- checked before training
def test_an_absent_device_is_one_error_before_anything_is_written(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    spec = sweep.with_settings(sweep.load_spec(tiny_spec()), device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        sweep.run_sweep(spec, tmp_path / "out", progress=False, log=lambda _: None)
    assert not (tmp_path / "out").exists()  # no store, no failed runs


def test_an_item_table_below_the_catalogue_stops_the_sweep_before_its_runs(tmp_path):
    spec = sweep.load_spec(tiny_spec() | {"train": dict(TINY_TRAIN, n_items=3)})
    trained = []
    with pytest.raises(ValueError, match="lies beyond the embedding table of 3 items"):
        sweep.run_sweep(spec, tmp_path, progress=False, log=lambda _: None,
                        train_fn=lambda *a, **k: trained.append(1))
    assert trained == []
    assert sweep.ResultStore(tmp_path / sweep.STORE_NAME).rows() == []


def test_the_store_refuses_a_foreign_database_and_leaves_it_alone(tmp_path):
    path = tmp_path / "results.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE cats (name TEXT)")
    with pytest.raises(sweep.StoreError, match="not a perflaw results store.*cats"):
        sweep.ResultStore(path)
    with sqlite3.connect(path) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert tables == ["cats"]


def test_a_diverged_run_is_recorded_as_failed_with_the_reason(tmp_path):
    pytest.importorskip("torch")
    spec = sweep.load_spec(tiny_spec(dim=[4]) | {"train": dict(TINY_TRAIN, lr=1e6, grad_clip=None)})
    summary = sweep.run_sweep(spec, tmp_path, progress=False, log=lambda _: None)
    assert (summary.finished, summary.failed) == (0, 1)
    (row,) = sweep.ResultStore(tmp_path / sweep.STORE_NAME).rows()
    assert row["status"] == "failed" and "training diverged" in row["error"]
    assert "ndcg@10" not in row or row["ndcg@10"] is None
