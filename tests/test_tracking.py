"""Experiment tracking (``--track mlflow|tensorboard``) against real stores, and ``perflaw export``."""

from __future__ import annotations

import json
import math
import pickle
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("torch")

from perflaw import sweep  # noqa: E402
from perflaw.cli import main  # noqa: E402
from perflaw.commands.export import flat_frame  # noqa: E402
from perflaw.store import ResultStore, open_results  # noqa: E402
from perflaw.tracking import TrackedTrain, make_tracker, metric_name  # noqa: E402

EPOCHS = 2
TINY = ["--layers", "1", "--dim", "8", "--max-len", "6", "--epochs", str(EPOCHS), "--batch-size", "8",
        "--device", "cpu", "--torch-threads", "1", "--no-progress"]
SPEC = {
    "name": "tiny",
    "datasets": [{"name": "s", "synth": {"users": 60, "items": 30, "seed": 1}}],
    "grid": {"layers": [1], "dim": [4, 8]},
    "data": {"max_len": [8]},
    "train": {"epochs": EPOCHS, "device": "cpu", "batch_size": 64, "warmup_steps": 1, "patience": None},
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No tracking settings from the environment; what perflaw sets is undone after each test."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.setenv(name, "x")  # recorded, so the undo removes what perflaw sets
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(autouse=True)
def keep_torch_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text('name = "tiny"\n[[datasets]]\nname = "s"\nsynth = {users = 60, items = 30, seed = 1}\n'
                    '[grid]\nlayers = [1]\ndim = [4, 8]\n[data]\nmax_len = [8]\n'
                    f'[train]\nepochs = {EPOCHS}\ndevice = "cpu"\nbatch_size = 64\nwarmup_steps = 1\n')
    return path


def mlflow_client(uri_or_dir, monkeypatch):
    mlflow = pytest.importorskip("mlflow", reason="pip install mlflow-skinny (perflaw[mlflow])")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this reader; perflaw sets it for itself
    uri = Path(uri_or_dir).resolve().as_uri() if not str(uri_or_dir).startswith("file:") else uri_or_dir
    return mlflow.tracking.MlflowClient(tracking_uri=uri)


def runs_of(client, experiment):
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id])


# ------------------------------------------------------------------ MLflow
def test_train_logs_one_mlflow_run_with_params_epochs_and_result(data_file, tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow", reason="pip install mlflow-skinny (perflaw[mlflow])")
    store, out = tmp_path / "mlruns", tmp_path / "run"
    code = main(["train", str(data_file), "--out", str(out), *TINY, "--track", "mlflow", "--track-uri", str(store)])
    assert code == 0, capsys.readouterr().err
    row = json.loads((out / "result.json").read_text())
    client = mlflow_client(store, monkeypatch)
    (run,) = runs_of(client, "perflaw-train")
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    params = run.data.params
    assert params["layers"] == "1" and params["dim"] == "8" and params["model"] == "llama"
    assert params["data"] == str(data_file.resolve()) and params["data_fingerprint"] == row["data_fingerprint"]
    for name in ("train/loss", "train/lr", "train/tokens_per_s", "valid/ndcg_at_10"):
        history = client.get_metric_history(run.info.run_id, name)
        assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1)), name
    losses = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/loss")}
    assert losses == pytest.approx({e["epoch"]: e["loss"] for e in row["history"]})
    metrics = run.data.metrics
    assert metrics[metric_name("test", "ndcg@10")] == pytest.approx(row["ndcg@10"])
    assert metrics["test/hr_at_10"] == pytest.approx(row["hr@10"]) and metrics["test/mrr"] == pytest.approx(row["mrr"])
    assert metrics["run/params"] == row["params"] and metrics["run/wall_s"] == pytest.approx(row["wall_s"])
    assert metrics["run/best_epoch"] == row["best_epoch"]
    assert run.data.tags["perflaw.data_fingerprint"] == row["data_fingerprint"]
    stored = client.download_artifacts(run.info.run_id, "result.json", str(tmp_path))
    assert json.loads(Path(stored).read_text())["ndcg@10"] == pytest.approx(row["ndcg@10"])

    # rerunning the finished run logs nothing new
    assert main(["train", str(data_file), "--out", str(out), *TINY, "--track", "mlflow", "--track-uri", str(store)]) == 0
    (again,) = runs_of(client, "perflaw-train")
    assert len(client.get_metric_history(again.info.run_id, "train/loss")) == EPOCHS


def test_sweep_logs_one_mlflow_run_per_trained_run_and_none_when_rerun(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow", reason="pip install mlflow-skinny (perflaw[mlflow])")
    spec, out, store = spec_file(tmp_path), tmp_path / "out", tmp_path / "mlruns"
    argv = ["sweep", str(spec), "--out", str(out), "--no-progress", "--track", "mlflow", "--track-uri", str(store)]
    assert main(argv) == 0, capsys.readouterr().err
    client = mlflow_client(store, monkeypatch)
    runs = runs_of(client, "perflaw-sweep-tiny")
    rows = open_results(out).rows()
    assert len(runs) == len(rows) == 2
    assert {r.data.tags["perflaw.run_key"] for r in runs} == {row["run_key"] for row in rows}
    by_key = {row["run_key"]: row for row in rows}
    for run in runs:
        row = by_key[run.data.tags["perflaw.run_key"]]
        assert run.info.status == "FINISHED" and run.data.tags["perflaw.sweep"] == "tiny"
        assert run.data.params["dataset"] == "s" and run.data.params["dim"] == str(row["dim"])
        assert run.data.params["data_fingerprint"] == row["data_fingerprint"]
        assert float(run.data.params["d_prime"]) == pytest.approx(row["d_prime"])
        assert len(client.get_metric_history(run.info.run_id, "train/loss")) == EPOCHS
        assert run.data.metrics["test/ndcg_at_10"] == pytest.approx(row["ndcg@10"])

    # a rerun trains nothing, so logs nothing
    assert main(argv) == 0
    assert "0 trained, 2 already done" in capsys.readouterr().out
    assert len(runs_of(client, "perflaw-sweep-tiny")) == 2


def test_an_interrupted_run_resumes_into_the_same_mlflow_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="pip install mlflow-skinny (perflaw[mlflow])")
    from perflaw import Sequences, TrainConfig
    from perflaw import tracking

    seqs = Sequences.from_lists([[1, 2, 3, 4, 5, 6], [2, 3, 4, 5, 6, 7], [3, 1, 4, 1, 5, 9]] * 4)
    config = TrainConfig(layers=1, dim=8, max_len=4, epochs=EPOCHS, batch_size=8, device="cpu", warmup_steps=1)
    tracker = make_tracker("mlflow", uri=str(tmp_path / "mlruns"), experiment="resume")
    train = pickle.loads(pickle.dumps(TrackedTrain(tracker, name="r")))  # as a Ray worker gets it
    original = tracking.MlflowRunLog.epoch

    def interrupted(self, log):
        original(self, log)
        raise KeyboardInterrupt  # after epoch 1 is checkpointed and logged

    with monkeypatch.context() as patch:
        patch.setattr(tracking.MlflowRunLog, "epoch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train(seqs, config, progress=False, checkpoint_dir=tmp_path / "ckpt")
    client = mlflow_client(tmp_path / "mlruns", monkeypatch)
    (run,) = runs_of(client, "resume")
    assert run.info.status == "KILLED"
    result = train(seqs, config, progress=False, checkpoint_dir=tmp_path / "ckpt")
    (run,) = runs_of(client, "resume")
    assert run.info.status == "FINISHED" and result.epochs_run == EPOCHS
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2]


def test_a_failing_tracker_warns_once_and_the_runs_still_train(tmp_path, capsys):
    pytest.importorskip("mlflow", reason="pip install mlflow-skinny (perflaw[mlflow])")
    tracker = make_tracker("mlflow", uri=str(tmp_path / "mlruns"), experiment="gone")
    shutil.rmtree(tmp_path / "mlruns")  # the store disappears after the check
    spec = sweep.load_spec(SPEC)
    summary = sweep.run_sweep(spec, tmp_path / "out", progress=False, train_fn=TrackedTrain(tracker),
                              log=lambda _: None)
    assert summary.finished == 2 and summary.failed == 0
    assert [r["status"] for r in open_results(tmp_path / "out").rows()] == ["ok", "ok"]
    assert capsys.readouterr().err.count("warning: mlflow tracking failed") == 1


def test_an_unusable_store_or_mismatched_flags_fail_before_training(data_file, tmp_path, capsys):
    pytest.importorskip("mlflow", reason="pip install mlflow-skinny (perflaw[mlflow])")
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "run"
    assert main(["train", str(data_file), "--out", str(out), *TINY, "--track", "mlflow",
                 "--track-uri", str(tmp_path / "file" / "mlruns")]) == 2
    assert "cannot log to the MLflow tracking store" in capsys.readouterr().err
    assert main(["train", str(data_file), "--out", str(out), *TINY, "--track-dir", str(tmp_path)]) == 2
    assert "need --track" in capsys.readouterr().err
    assert main(["train", str(data_file), "--out", str(out), *TINY, "--track", "mlflow", "--track-dir", "x"]) == 2
    assert "--track-dir is for --track tensorboard" in capsys.readouterr().err
    assert not (out / "result.json").exists()


@pytest.mark.parametrize("module, kind", [("mlflow", "mlflow"), ("tensorboard", "tensorboard")])
def test_a_missing_extra_gives_the_pip_line(module, kind, data_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, module, None)
    assert main(["train", str(data_file), "--out", str(tmp_path / "run"), *TINY, "--track", kind]) == 2
    err = capsys.readouterr().err
    assert f'pip install "perflaw[{kind}]"' in err and len(err.strip().splitlines()) == 1


def test_mlflow_tracking_uri_from_the_environment(data_file, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="pip install mlflow-skinny (perflaw[mlflow])")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "env-store").as_uri())
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "mine")
    assert main(["train", str(data_file), "--out", str(tmp_path / "run"), *TINY, "--track", "mlflow"]) == 0
    assert len(runs_of(mlflow_client(tmp_path / "env-store", monkeypatch), "mine")) == 1


# ------------------------------------------------------------- TensorBoard
def scalars(folder: Path) -> dict[str, list[int]]:
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator", reason="pip install tensorboard")
    events = accumulator.EventAccumulator(str(folder), size_guidance={accumulator.SCALARS: 0})
    events.Reload()
    return {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_train_and_sweep_write_tensorboard_scalars(data_file, tmp_path, capsys):
    pytest.importorskip("tensorboard", reason="pip install tensorboard (perflaw[tensorboard])")
    logs = tmp_path / "runs"
    out = tmp_path / "run"
    assert main(["train", str(data_file), "--out", str(out), *TINY, "--track", "tensorboard",
                 "--track-dir", str(logs)]) == 0, capsys.readouterr().err
    row = json.loads((out / "result.json").read_text())
    tags = scalars(logs / "perflaw-train" / "run")
    for tag in ("train/loss", "train/lr", "train/tokens_per_s", "valid/ndcg_at_10", "valid/mrr"):
        assert tags[tag] == list(range(1, EPOCHS + 1)), tag
    for tag in ("test/ndcg_at_10", "test/hr_at_10", "best_valid/ndcg_at_10", "run/wall_s", "run/params"):
        assert tags[tag] == [row["best_epoch"]], tag

    spec = spec_file(tmp_path)
    argv = ["sweep", str(spec), "--out", str(tmp_path / "out"), "--no-progress", "--track", "tensorboard",
            "--track-dir", str(logs)]
    assert main(argv) == 0
    folders = sorted(p.name for p in (logs / "perflaw-sweep-tiny").iterdir())
    assert folders == ["s_frac=1_max_len=8_llama_1x4_seed=0", "s_frac=1_max_len=8_llama_1x8_seed=0"]
    for folder in folders:
        tags = scalars(logs / "perflaw-sweep-tiny" / folder)
        assert tags["train/loss"] == [1, 2] and len(tags["test/ndcg_at_10"]) == 1
    assert main(argv) == 0  # nothing trains, nothing is added
    assert sorted(p.name for p in (logs / "perflaw-sweep-tiny").iterdir()) == folders


# ------------------------------------------------------------------ export
@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A real tiny sweep, plus one failed run recorded in its store."""
    out = tmp_path_factory.mktemp("export") / "sweep"
    sweep.run_sweep(sweep.load_spec({**SPEC, "train": {**SPEC["train"], "epochs": 1}}), out, progress=False,
                    log=lambda _: None)
    store = ResultStore(out / sweep.STORE_NAME)
    store.record("f" * 20, {"dataset": "s", "layers": 9, "dim": 4, "error": "RuntimeError: boom"}, "failed")
    store.close()
    return out


def stored_frame(path: Path, include_failed: bool) -> pd.DataFrame:
    store = open_results(path)
    try:
        return store.frame(include_failed=include_failed)
    finally:
        store.close()


def same_value(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
@pytest.mark.parametrize("failed", [False, True])
def test_export_writes_the_stores_frame(fmt, failed, sweep_dir, tmp_path, capsys):
    target = tmp_path / f"runs.{fmt}"
    argv = ["export", str(sweep_dir), "--to", fmt, "--out", str(target), *(["--failed"] if failed else [])]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == str(target)
    expected = stored_frame(sweep_dir, failed)
    assert len(expected) == (3 if failed else 2)
    if fmt == "jsonl":
        lines = [json.loads(line) for line in target.read_text().splitlines()]
        got = pd.DataFrame(lines)
        assert got["history"][0] == expected["history"][0] and got["config"][0] == expected["config"][0]
        expected = flat_frame(expected)
        got = flat_frame(got)
    else:
        got = pd.read_csv(target) if fmt == "csv" else pd.read_parquet(target)
        expected = flat_frame(expected)
        assert json.loads(got["config"][0]) == json.loads(expected["config"][0])
    assert list(got.columns) == list(expected.columns)
    for column in expected.columns:
        want = [None if pd.isna(v) else v for v in expected[column]]
        have = [None if pd.isna(v) else v for v in got[column]]
        assert all(same_value(a, b) or (isinstance(a, (int, float)) and a == pytest.approx(b))
                   for a, b in zip(have, want)), column
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_export_defaults_next_to_the_store_and_reports_errors_in_one_line(sweep_dir, tmp_path, capsys):
    assert main(["export", str(sweep_dir / sweep.STORE_NAME), "--to", "csv"]) == 0
    assert capsys.readouterr().out.strip() == str(sweep_dir / "runs.csv") and (sweep_dir / "runs.csv").is_file()
    assert main(["export", str(sweep_dir), "--out", str(tmp_path / "r.parquet"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"path": str(tmp_path / "r.parquet"), "format": "parquet", "runs": 2}
    for argv, message in [
        (["export", str(tmp_path / "missing"), "--to", "csv"], "no results store"),
        (["export", str(sweep_dir), "--to", "xml"], "unknown format 'xml'"),
        (["export", str(sweep_dir)], "give the format"),
        (["export", str(sweep_dir), "--to", "csv", "--out", str(tmp_path / "no" / "x.csv")], "does not exist"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("perflaw export: error: ") and message in err and len(err.strip().splitlines()) == 1
