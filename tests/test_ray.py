"""perflaw.cluster against a real Ray cluster on this machine: a head and a worker node.

The module fixture starts both with ``ray start --block --node-ip-address=127.0.0.1``
(explicit free ports, one CPU each, a private --temp-dir), each in its own
process group, and stops exactly those processes afterwards. Ray (2.60) swaps
a loopback --node-ip-address for the host's own address; the kernel still
delivers traffic to a local address over the loopback device, and the
fixture checks that every node advertises an address of this machine.

Select these tests with ``pytest -m ray``; skip them with ``-m "not ray"``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="perflaw.cluster needs Ray: pip install 'perflaw[ray]'")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import perflaw  # noqa: E402
from perflaw import cluster, sweep, synth  # noqa: E402
from perflaw.cli import main as cli  # noqa: E402
from perflaw.sequences import Sequences  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.filterwarnings("ignore::DeprecationWarning:ray\\.data\\.context")]

TINY_TRAIN = {"epochs": 1, "device": "cpu", "batch_size": 64, "warmup_steps": 1, "patience": None}


# ============================================================ the cluster
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRayCluster:
    """A Ray head and worker nodes on this machine, each a ``ray start --block`` process group.

    ``stop()`` ends the process groups it started (SIGTERM, then SIGKILL),
    then any process still naming its private temp dir, and removes the dir.
    """

    def __init__(self, workers: int = 1, cpus: int = 1, head_cpus: int = 1, worker_gpus: int = 0,
                 object_store_bytes: int = 200_000_000):
        self.workers, self.cpus, self.head_cpus, self.worker_gpus = workers, cpus, head_cpus, worker_gpus
        self.object_store_bytes = object_store_bytes
        # Short: Ray puts AF_UNIX sockets (at most 107 bytes of path) under it.
        self.tmp = Path(tempfile.mkdtemp(prefix="pfray-", dir="/tmp"))
        self.port = free_port()
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _common(self, cpus: int) -> list[str]:
        return [
            "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}", f"--temp-dir={self.tmp}",
            f"--object-store-memory={self.object_store_bytes}", "--disable-usage-stats",
            f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
        ]

    def _launch(self, name: str, args: list[str]) -> None:
        import perflaw as package

        source = str(Path(package.__file__).resolve().parents[1])  # workers import this perflaw
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
               "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
        log = self.tmp / f"{name}.log"
        with open(log, "w") as handle:
            proc = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--block", *args],
                                    stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append(proc)
        self.logs.append(log)
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start ({name}) failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def start(self) -> "LocalRayCluster":
        self._launch("head", ["--head", f"--port={self.port}", "--include-dashboard=false",
                              f"--dashboard-port={free_port()}", *self._common(self.head_cpus)])
        for i in range(self.workers):
            self.add_worker(i)
        return self

    def add_worker(self, index: int) -> None:
        gpus = [f"--num-gpus={self.worker_gpus}"] if self.worker_gpus else []
        self._launch(f"worker{index}", [f"--address={self.address}", *self._common(self.cpus), *gpus])

    def wait_for_nodes(self, count: int, timeout_s: float = 60) -> list[dict]:
        """The alive nodes, once there are ``count`` of them (needs ``ray.init`` first)."""
        deadline = time.monotonic() + timeout_s
        while True:
            alive = [n for n in ray.nodes() if n["Alive"]]
            if len(alive) == count:
                return alive
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(alive)} Ray nodes alive, expected {count}")
            time.sleep(0.2)

    def leftovers(self) -> list[int]:
        """PIDs of live processes that name this cluster's temp dir."""
        marker = str(self.tmp).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def stop(self) -> None:
        for proc in reversed(self.procs):  # workers first, the head last
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=30)
        for _ in range(50):  # stragglers that left the process groups
            pids = self.leftovers()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # start_new_session made the pid the group id
    except ProcessLookupError:
        pass


def is_local_address(ip: str) -> bool:
    """True when ``ip`` belongs to this machine (so the kernel routes it over loopback)."""
    try:
        with socket.socket() as s:
            s.bind((ip, 0))
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def ray_cluster():
    # The worker node declares one GPU (a Ray resource; it has no CUDA device):
    # runs whose device may use CUDA must be placed there.
    local = LocalRayCluster(workers=1, cpus=1, head_cpus=1, worker_gpus=1)
    try:
        local.start()
        ray.init(address=local.address, logging_level="WARNING")
        local.nodes = local.wait_for_nodes(2)
        yield local
    finally:
        if ray.is_initialized():
            ray.shutdown()
        local.stop()
    assert local.leftovers() == [], "Ray processes outlived the test cluster"


def test_cluster_is_two_local_nodes(ray_cluster):
    assert len(ray_cluster.nodes) == 2
    assert sum(bool(n["Resources"].get("GPU")) for n in ray_cluster.nodes) == 1
    for node in ray_cluster.nodes:
        assert is_local_address(node["NodeManagerAddress"]), node["NodeManagerAddress"]


# ============================================================ data quality
@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """8 Parquet shards of one corpus; rows are dealt to shards at random, so users span shards."""
    folder = tmp_path_factory.mktemp("shards")
    seqs = synth.generate(synth.SynthConfig(users=300, items=40, seed=7))
    users = np.repeat(seqs.user_ids, seqs.lengths).astype(np.int64)
    items = seqs.item_vocab[seqs.items - 1].astype(np.int64)
    rows = len(items)
    table = pa.table({
        "user": users,
        "item": items,
        "ts": np.arange(rows) // 3,  # ties inside users: file order must break them
        "user_s": pa.array([f"user-{u}" for u in users.tolist()]),
        "item_s": pa.array([f"item/{i}" for i in items.tolist()]),
    })
    shard = np.random.default_rng(0).integers(0, 8, rows)
    paths = []
    for s in range(8):
        path = folder / f"part-{s:02d}.parquet"
        pq.write_table(table.filter(pa.array(shard == s)), path)
        paths.append(path)
    return paths


def concatenated(paths) -> "pa.Table":
    return pa.concat_tables([pq.read_table(p) for p in paths])


def assert_same_quality(got, want) -> None:
    for field in dataclasses.fields(want):
        a, b = getattr(got, field.name), getattr(want, field.name)
        if isinstance(b, float):
            assert isinstance(a, float), field.name
            if math.isnan(b):
                assert math.isnan(a), field.name
            else:
                assert a == pytest.approx(b, rel=1e-12, abs=0), field.name
        else:
            assert a == b, field.name


def test_users_really_span_shards(shards):
    where = {}
    for s, path in enumerate(shards):
        for u in set(pq.read_table(path, columns=["user"]).column("user").to_pylist()):
            where.setdefault(u, set()).add(s)
    assert sum(len(v) > 1 for v in where.values()) > len(where) // 2


@pytest.mark.parametrize(
    "options",
    [
        dict(m=2, timestamp="ts"),
        dict(m=3, max_len=10, user="user_s", item="item_s"),  # string ids, file order, truncation
    ],
    ids=["int-ids-timestamps", "string-ids-file-order"],
)
def test_data_quality_over_8_shards_equals_the_local_engine(ray_cluster, shards, options):
    local_options = {k: v for k, v in options.items() if k in ("m", "max_len")}
    columns = {k: options[k] for k in ("user", "item", "timestamp") if k in options}
    reference = perflaw.data_quality(Sequences.from_table(concatenated(shards), **columns), **local_options)
    got = cluster.data_quality([str(p) for p in shards], **options, partitions=16, user_partitions=12)
    assert_same_quality(got, reference)
    assert got.users == 300 and got.block_windows > 0


def test_dataset_source_with_an_order_column(ray_cluster, shards):
    table = concatenated(shards)
    table = table.append_column("position", pa.array(np.arange(table.num_rows)))
    # Reverse the rows: only the order column can restore each user's item order.
    dataset = ray.data.from_arrow(table.take(pa.array(np.arange(table.num_rows)[::-1]))).repartition(5)
    got = cluster.data_quality(dataset, m=2, order="position", block_entropy=False)
    reference = perflaw.data_quality(Sequences.from_table(concatenated(shards)), m=2, block_entropy=False)
    assert_same_quality(got, reference)
    assert got.block_entropy is None


def test_quality_command_with_ray_in_process_and_as_a_subprocess(ray_cluster, shards, capsys):
    folder = shards[0].parent
    reference = perflaw.data_quality(Sequences.from_table(concatenated(shards), timestamp="ts"), m=2)
    assert cli(["quality", str(folder / "part-*.parquet"), "--ray", ray_cluster.address, "--timestamp", "ts",
                "--json"]) == 0
    in_process = json.loads(capsys.readouterr().out)
    assert in_process == json.loads(json.dumps(reference.to_dict()))
    done = subprocess.run(
        [sys.executable, "-m", "perflaw.cli", "quality", str(folder), "--ray", ray_cluster.address, "--timestamp", "ts",
         "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == in_process


# --------------------------------------------------------------- bad input
def test_missing_column_empty_input_and_unordered_dataset_are_clear_errors(ray_cluster, shards, tmp_path):
    with pytest.raises(ValueError, match=r"missing column\(s\) \['clicks'\].*it has \['user', 'item', 'ts'"):
        cluster.data_quality(shards, item="clicks")
    empty = tmp_path / "empty.parquet"
    pq.write_table(pq.read_table(shards[0]).slice(0, 0), empty)
    with pytest.raises(ValueError, match="no interactions.*no rows"):
        cluster.data_quality(empty)
    with pytest.raises(ValueError, match="no files match"):
        cluster.data_quality(str(tmp_path / "nothing-*.parquet"))
    with pytest.raises(FileNotFoundError):
        cluster.data_quality(str(tmp_path / "missing.parquet"))
    with pytest.raises(ValueError, match="Ray Dataset is empty"):
        cluster.data_quality(ray.data.from_arrow(pq.read_table(shards[0]).slice(0, 0)), timestamp="ts")
    with pytest.raises(ValueError, match="timestamp= .*order="):
        cluster.data_quality(ray.data.from_arrow(pq.read_table(shards[0])))
    with pytest.raises(ValueError, match="m must be >= 1"):
        cluster.data_quality(shards, m=0)


UNREACHABLE = """
import json, sys, time
from perflaw import cluster
out = []
for address in json.loads(sys.argv[1]):
    started = time.monotonic()
    try:
        cluster.data_quality(sys.argv[2], address=address, timeout_s=2)
        out.append(["no error", 0.0])
    except Exception as exc:
        out.append([type(exc).__name__ + ": " + str(exc), time.monotonic() - started])
print(json.dumps(out))
"""


def test_unreachable_addresses_fail_fast_with_a_clear_error(shards):
    # Fresh processes: this one is connected already, and an existing connection is reused.
    silent = socket.socket()  # accepts connections (the kernel does) but never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    chatty = socket.socket()  # answers every connection, but not as a Ray cluster
    chatty.bind(("127.0.0.1", 0))
    chatty.listen(8)

    def answer_http():
        while True:
            try:
                conn, _ = chatty.accept()
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                conn.close()
            except OSError:  # closed at the end of the test, or the peer left first
                if chatty.fileno() == -1:
                    return

    threading.Thread(target=answer_http, daemon=True).start()
    refused = f"127.0.0.1:{free_port()}"
    silent_address, chatty_address = (f"127.0.0.1:{s.getsockname()[1]}" for s in (silent, chatty))
    # One process per case that leaves an abandoned connection attempt behind; the
    # silent one then tries again while its first attempt is still running.
    groups = {"quick": [refused, "no-port-here"], "silent": [silent_address, silent_address],
              "chatty": [chatty_address]}
    started = time.monotonic()
    try:
        procs = {name: subprocess.Popen([sys.executable, "-c", UNREACHABLE, json.dumps(addresses), str(shards[0])],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name, addresses in groups.items()}
        done = {name: proc.communicate(timeout=120) + (proc.returncode,) for name, proc in procs.items()}
    finally:
        silent.close()
        chatty.close()
    wall_s = time.monotonic() - started
    for name, (stdout, stderr, returncode) in done.items():
        assert returncode == 0, (name, stderr[-3000:])
    out = {name: json.loads(stdout) for name, (stdout, _, _) in done.items()}
    (refused_error, _), (malformed, _) = out["quick"]
    assert refused_error.startswith(f"ClusterError: no Ray cluster at {refused}") and "refused" in refused_error
    assert malformed.startswith("PerflawError") and "HOST:PORT" in malformed
    (first, _), (again, _) = out["silent"]
    assert first == f"ClusterError: no Ray cluster at {silent_address}: no answer within 2s"
    assert again.startswith(f"ClusterError: no Ray cluster at {silent_address}: an earlier attempt"), again
    (chatty_error, _), = out["chatty"]
    assert chatty_error.startswith(f"ClusterError: no Ray cluster at {chatty_address}"), chatty_error
    assert all(seconds < 10 for results in out.values() for _, seconds in results), out
    assert wall_s < 60, f"the processes took {wall_s:.0f}s to exit"  # abandoned attempts do not hold up an exit


# ================================================================= sweeps
def tiny_spec(**train) -> dict:
    return {
        "name": "tiny-ray",
        "datasets": [{"name": "s", "synth": {"users": 60, "items": 30, "seed": 1}}],
        "grid": {"layers": [1], "dim": [4, 8, 12, 16]},
        "data": {"max_len": [8]},
        "train": {**TINY_TRAIN, **train},
    }


def flaky_train_fn(marks: str):
    """A train_fn (it runs on the workers) that logs each attempt and takes at least 1.5 s;
    dim 8 hangs on its first attempt, to be killed, and dim 12 always raises."""

    def train_fn(sequences, config, progress, checkpoint_dir):
        import os
        import time
        from pathlib import Path

        from perflaw.training import train

        log = Path(marks) / f"attempts-{config.dim}"
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(1.5)  # hold the node's only CPU a while, so that concurrent runs need the other node
        if config.dim == 8 and len(log.read_text().split()) == 1:
            (Path(marks) / "victim.pid").write_text(str(os.getpid()))
            time.sleep(60)  # killed here (if not, the test fails after a minute, not never)
        if config.dim == 12:
            raise RuntimeError("loss diverged (simulated)")
        return train(sequences, config, progress=progress, checkpoint_dir=checkpoint_dir)

    return train_fn


def kill_victim(marks: Path, killed: list[int]) -> None:
    victim = marks / "victim.pid"
    deadline = time.monotonic() + 120
    while not victim.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the file is written; the worker is sleeping now
    pid = int(victim.read_text())
    command = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"default_worker" in command or b"ray::" in command, command  # a Ray worker, nothing else
    os.kill(pid, signal.SIGKILL)
    killed.append(pid)


def test_sweep_spreads_over_both_nodes_retries_a_killed_worker_and_records_failures(ray_cluster, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    spec = sweep.load_spec(tiny_spec())
    killed: list[int] = []
    killer = threading.Thread(target=kill_victim, args=(marks, killed), daemon=True)
    killer.start()
    executor = cluster.RayExecutor(max_retries=2)  # the connection of this process is reused
    summary = sweep.run_sweep(spec, tmp_path / "out", train_fn=flaky_train_fn(str(marks)), progress=False,
                              log=lambda _: None, executor=executor)
    killer.join(timeout=5)
    assert len(killed) == 1
    assert (summary.finished, summary.failed, summary.skipped) == (3, 1, 0)

    rows = sweep.open_results(tmp_path / "out").rows()
    assert len(rows) == 4 and len({r["run_key"] for r in rows}) == 4
    by_dim = {r["dim"]: r for r in rows}
    assert sorted(by_dim) == [4, 8, 12, 16]
    assert {d: r["status"] for d, r in by_dim.items()} == {4: "ok", 8: "ok", 12: "failed", 16: "ok"}
    assert "loss diverged" in by_dim[12]["error"]
    # dim 8: killed once, retried by Ray on a fresh worker, then trained.
    attempts = (marks / "attempts-8").read_text().split()
    assert len(attempts) == 2 and int(attempts[0]) == killed[0]
    assert by_dim[8]["ray_worker_pid"] == int(attempts[1]) != killed[0]
    assert by_dim[8]["ndcg@10"] >= 0
    # dim 12 failed for its own reasons: recorded, never retried.
    assert len((marks / "attempts-12").read_text().split()) == 1
    # The runs went to both nodes.
    assert {r["ray_node_id"] for r in rows} == {n["NodeID"] for n in ray_cluster.nodes}

    # Resuming (through the shorthand) skips the finished runs, retries the failed one, and duplicates nothing.
    again = cluster.run_sweep(spec, tmp_path / "out", train_fn=flaky_train_fn(str(marks)), progress=False,
                                  log=lambda _: None)
    assert (again.skipped, again.finished, again.failed) == (3, 0, 1)
    rows = sweep.open_results(tmp_path / "out").rows()
    assert len(rows) == 4 and sorted(r["dim"] for r in rows) == [4, 8, 12, 16]
    assert len((marks / "attempts-12").read_text().split()) == 2
    assert len((marks / "attempts-4").read_text().split()) == 1


def test_sweep_command_with_ray_places_auto_device_runs_on_the_gpu_node(ray_cluster, tmp_path, capsys):
    spec = tiny_spec(device="auto")
    spec["grid"]["dim"] = [4, 8]
    lines = [f'name = "{spec["name"]}"', "[[datasets]]", 'name = "s"', "synth = { users = 60, items = 30, seed = 1 }",
             "[grid]", "layers = [1]", "dim = [4, 8]", "[data]", "max_len = [8]", "[train]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in spec["train"].items() if value is not None]
    toml = tmp_path / "spec.toml"
    toml.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert cli(["sweep", str(toml), "--ray", ray_cluster.address, "--out", str(out), "--no-progress"]) == 0
    assert "2 trained, 0 already done, 0 failed" in capsys.readouterr().out
    rows = sweep.open_results(out).rows()
    gpu_node = next(n["NodeID"] for n in ray_cluster.nodes if n["Resources"].get("GPU"))
    assert {r["ray_node_id"] for r in rows} == {gpu_node}
    assert cli(["sweep", str(toml), "--ray", ray_cluster.address, "--out", str(out), "--no-progress"]) == 0
    assert "0 trained, 2 already done" in capsys.readouterr().out
    assert len(sweep.open_results(out).rows()) == 2


def test_sweep_asking_for_more_gpus_than_the_cluster_has_fails_before_training(ray_cluster, tmp_path):
    spec = sweep.load_spec(tiny_spec())
    with pytest.raises(ValueError, match="gpus_per_run=4 but the Ray cluster has 1 GPU"):
        cluster.run_sweep(spec, tmp_path / "out", gpus_per_run=4, progress=False)
    with pytest.raises(ValueError, match="gpus_per_run=2 but the Ray cluster has 1 GPU"):
        sweep.run_sweep(spec, tmp_path / "out", progress=False, executor=cluster.RayExecutor(gpus_per_run=2))
    assert not (tmp_path / "out").exists()
    assert ray.is_initialized()  # the executor leaves the connection it found as it was
    with pytest.raises(ValueError, match="cpus_per_run must be a positive number"):
        cluster.RayExecutor(cpus_per_run=0)
