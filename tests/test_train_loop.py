"""Training on the CPU with tiny models: learning, reproducibility, resume, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import perflaw  # noqa: E402
from perflaw.eval import METRIC_NAMES, ranking_task, leave_one_out, evaluate  # noqa: E402
from perflaw.sequences import Sequences  # noqa: E402
from perflaw.training import TrainConfig, TrainResult, load_checkpoint, train  # noqa: E402
from perflaw.training.data import build_train_data, epoch_batches, training_windows  # noqa: E402
from perflaw.training.losses import draw_negatives  # noqa: E402
from perflaw.sizing import param_count  # noqa: E402

TIMING_KEYS = {"train_s", "tokens_per_s"}


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def cycle_data(users=60, n_items=40, length=8, seed=0):
    """Every user walks a cycle 1 -> 2 -> ... -> n -> 1 from a random start: the next item is determined."""
    rng = np.random.default_rng(seed)
    return Sequences.from_lists([[(s + i) % n_items + 1 for i in range(length)] for s in rng.integers(0, n_items, users)])


def random_data(users=40, n_items=25, seed=0):
    rng = np.random.default_rng(seed)
    return Sequences.from_lists([rng.integers(1, n_items + 1, size=rng.integers(2, 12)).tolist() for _ in range(users)])


def tiny(**overrides):
    settings = dict(layers=1, dim=16, max_len=8, epochs=3, batch_size=16, lr=5e-3, warmup_steps=0,
                    device="cpu", patience=None)
    return TrainConfig(**(settings | overrides))


def without_timing(history):
    return [{k: v for k, v in entry.items() if k not in TIMING_KEYS} for entry in history]


# ------------------------------------------------------------------ learning
@pytest.mark.parametrize(
    "model,loss", [("llama", "ce"), ("hstu", "ce"), ("sasrec", "ce"), ("llama", "bce"), ("llama", "sampled_softmax")]
)
def test_loss_decreases(model, loss):
    result = train(cycle_data(), tiny(model=model, loss=loss, epochs=8, lr=1e-2, dropout=0.0), progress=False)
    losses = [entry["loss"] for entry in result.history]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.8 * losses[0], losses


def test_llama_overfits_a_tiny_deterministic_dataset():
    config = tiny(dim=32, epochs=40, lr=1e-2, dropout=0.0, batch_size=8)
    result = train(cycle_data(), config, progress=False)
    # a random ranking of the 33 unmasked candidates would give hr@1 ~ 0.03
    assert result.metrics["hr@1"] >= 0.95, result.metrics
    assert result.valid_metrics["hr@1"] >= 0.95
    assert result.history[-1]["loss"] < 0.3


def test_result_records_how_it_was_made():
    seqs = random_data()
    config = tiny(model="sasrec", loss="bce", protocol="sampled", eval_negatives=10, epochs=2)
    result = train(seqs, config, progress=False)
    assert isinstance(result, TrainResult)
    row = result.to_dict()
    for key in ["model", "layers", "dim", "heads", "max_len", "loss", "protocol", "eval_negatives", "seed", "params",
                "params_non_embedding", "n_items", "n_users", "tokens", "data_fingerprint", "wall_s", "tokens_per_s",
                "peak_memory_bytes", "best_epoch", "perflaw_version", *METRIC_NAMES]:
        assert key in row, key
    assert row["eval_negatives"] == 10 and row["negatives"] == 1 and row["protocol"] == "sampled"
    assert row["params"] == param_count("sasrec", 1, 16, seqs.n_items, 8)
    assert row["params_non_embedding"] == param_count("sasrec", 1, 16, seqs.n_items, 8, include_embedding=False)
    assert row["data_fingerprint"] == seqs.fingerprint()
    assert row["tokens"] == seqs.tokens and row["n_users"] == seqs.n_users
    assert row["train_tokens"] == sum(max(0, n - 1) for n in leave_one_out(seqs).train.lengths)
    assert set(row["valid_metrics"]) == set(METRIC_NAMES)
    assert row["perflaw_version"] == perflaw.__version__
    assert row["tokens_per_s"] > 0 and row["peak_memory_bytes"] > 0
    assert row["config"] == config.to_dict()
    assert result.metrics == {name: row[name] for name in METRIC_NAMES}


# ----------------------------------------------------------- reproducibility
def test_same_seed_same_result_and_other_seed_differs():
    seqs = random_data()
    config = tiny(model="sasrec", loss="sampled_softmax", negatives=5, dropout=0.3)
    a = train(seqs, config, progress=False)
    b = train(seqs, config, progress=False)
    c = train(seqs, TrainConfig(**(config.to_dict() | {"seed": 1})), progress=False)
    assert a.metrics == b.metrics and a.valid_metrics == b.valid_metrics
    assert without_timing(a.history) == without_timing(b.history)
    assert [e["loss"] for e in a.history] != [e["loss"] for e in c.history]


def test_train_leaves_the_callers_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(random_data(), tiny(epochs=1), progress=False)
    assert torch.equal(torch.rand(3), expected)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("model,loss", [("sasrec", "bce"), ("llama", "ce")])
def test_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, model, loss):
    seqs = random_data()
    config = tiny(model=model, loss=loss, epochs=4, dropout=0.3, eval_every=1, patience=None)
    whole = train(seqs, config, progress=False)

    def stop_after_two(log):
        if log["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(seqs, config, progress=False, checkpoint_dir=tmp_path, callback=stop_after_two)
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()
    resumed = train(seqs, config, progress=False, checkpoint_dir=tmp_path)
    assert resumed.metrics == whole.metrics
    assert resumed.valid_metrics == whole.valid_metrics
    assert resumed.best_epoch == whole.best_epoch and resumed.epochs_run == 4
    assert without_timing(resumed.history) == without_timing(whole.history)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temporary files left


def test_resume_refuses_other_settings_or_data(tmp_path):
    seqs = random_data()
    train(seqs, tiny(epochs=1), progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"different settings \(dim\)"):
        train(seqs, tiny(epochs=1, dim=8), progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="different data"):
        train(random_data(seed=1), tiny(epochs=1), progress=False, checkpoint_dir=tmp_path)


def test_best_checkpoint_reloads_the_best_model(tmp_path):
    seqs = random_data()
    config = tiny(epochs=3)
    result = train(seqs, config, progress=False, checkpoint_dir=tmp_path)
    model, loaded_config = load_checkpoint(tmp_path / "best.pt")
    assert loaded_config == config
    task = ranking_task(leave_one_out(seqs), "test", config.max_len)
    assert evaluate(model, task) == result.metrics


def test_early_stopping_stops_after_patience_evaluations():
    # a vanishing learning rate leaves the validation metric unchanged, so it never improves
    result = train(random_data(), tiny(epochs=10, lr=1e-12, patience=2), progress=False)
    assert result.epochs_run == 3 and result.best_epoch == 1


# ---------------------------------------------------------------------- data
def test_training_windows_cover_every_target_once():
    seqs = random_data(users=30)
    train_part = leave_one_out(seqs).train
    for max_len in (2, 3, 50):
        windows, users, lengths = training_windows(train_part, max_len)
        pairs = []
        for row, user, length in zip(windows, users, lengths):
            real = row[row != 0].tolist()
            assert len(real) == length + 1 and (row[: max_len + 1 - len(real)] == 0).all()
            pairs += [(int(user), a, b) for a, b in zip(real[:-1], real[1:])]
        history = train_part.to_lists()
        expected = [(u, a, b) for u, h in enumerate(history) for a, b in zip(h[:-1], h[1:])]
        assert sorted(pairs) == sorted(expected)


@pytest.mark.parametrize("trim", [False, True])
def test_an_epoch_visits_each_window_once(trim):
    data = build_train_data(leave_one_out(random_data()).train, 6, 25, torch.device("cpu"), False)
    generator = torch.Generator().manual_seed(0)
    seen = []
    for inputs, targets, users in epoch_batches(data, 7, generator, trim):
        assert torch.equal(inputs[:, 1:], targets[:, :-1])
        seen += [tuple(t[i != 0].tolist()) for i, t in zip(inputs, targets)]  # targets of real inputs
    expected = [tuple(w[1:][w[:-1] != 0].tolist()) for w in data.windows.numpy()]
    assert sorted(seen) == sorted(expected)


def test_training_negatives_avoid_the_users_training_items():
    seqs = random_data(users=30, n_items=25)
    train_part = leave_one_out(seqs).train
    data = build_train_data(train_part, 6, seqs.n_items, torch.device("cpu"), True)
    users = torch.arange(seqs.n_users).repeat_interleave(50)
    negatives = draw_negatives(data.exclusion, users, 3, torch.Generator().manual_seed(0))
    history = train_part.to_lists()
    for user, drawn in zip(users.tolist(), negatives.tolist()):
        allowed = set(range(1, 26)) - set(history[user])
        assert set(drawn) <= (allowed or set(range(1, 26)))


# -------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "overrides,error,match",
    [
        ({"dim": 64, "heads": 3}, ValueError, "heads=3 is not valid"),
        ({"max_len": 1}, ValueError, "max_len must be >= 2"),
        ({"model": "bert4rec"}, ValueError, "unknown model 'bert4rec'"),
        ({"loss": "bpr"}, ValueError, "unknown loss 'bpr'"),
        ({"negatives": 5}, ValueError, "negatives=5 has no meaning for loss='ce'"),
        ({"eval_negatives": 100}, ValueError, "eval_negatives=100 needs protocol='sampled'"),
        ({"protocol": "popular"}, ValueError, "unknown protocol"),
        ({"dropout": 1.0}, ValueError, "dropout must be < 1.0"),
        ({"lr": 0.0}, ValueError, "lr must be > 0.0"),
        ({"epochs": 2.5}, TypeError, "epochs must be an integer"),
        ({"valid_metric": "auc"}, ValueError, "unknown valid_metric"),
    ],
)
def test_bad_configs_give_clear_errors(overrides, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**overrides)


def test_bad_data_gives_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        train(Sequences.from_lists([]), tiny(), progress=False)
    with pytest.raises(ValueError, match="item id 25 lies beyond the embedding table of 10 items"):
        train(random_data(n_items=25, seed=3), tiny(n_items=10), progress=False)
    with pytest.raises(ValueError, match="no training targets"):
        train(Sequences.from_lists([[1, 2, 3]] * 4), tiny(), progress=False)
    with pytest.raises(TypeError, match="seqs must be perflaw.Sequences"):
        train([[1, 2, 3]], tiny(), progress=False)
    with pytest.raises(TypeError, match="config must be a perflaw.TrainConfig"):
        train(random_data(), {"dim": 8}, progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            train(random_data(), tiny(device="cuda"), progress=False)


def test_perflaw_train_stays_the_function_after_importing_the_training_package():
    import perflaw.training.config  # importing the package must not rebind perflaw.train  # noqa: F401

    result = perflaw.train(random_data(), perflaw.TrainConfig(**tiny(epochs=1).to_dict()), progress=False)
    assert result.epochs_run == 1


# ------------------------------------------------- the GPU code path, on the CPU
@pytest.mark.parametrize("loss", ["ce", "bce", "sampled_softmax"])
def test_padding_weighted_loss_equals_loss_on_real_positions(loss):
    from perflaw.training.losses import next_item_loss

    torch.manual_seed(0)
    hidden = torch.randn(4, 6, 8)
    targets = torch.randint(1, 20, (4, 6))
    valid = torch.rand(4, 6) > 0.4
    targets[~valid] = 0
    table = torch.randn(20, 8)
    negatives = torch.randint(1, 20, (4, 6, 3)) if loss != "ce" else None
    compact = next_item_loss(loss, hidden[valid], targets[valid], table,
                             None if negatives is None else negatives[valid])
    weighted = next_item_loss(loss, hidden.flatten(0, 1), targets.flatten(), table,
                              None if negatives is None else negatives.flatten(0, 1), valid.flatten().float())
    torch.testing.assert_close(compact, weighted)


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_fixed_shape_path_trains(monkeypatch, loss):
    from perflaw.training import loop

    monkeypatch.setattr(loop, "fixed_shapes", lambda device: True)
    result = train(cycle_data(), tiny(loss=loss, epochs=8, lr=1e-2, dropout=0.0), progress=False)
    losses = [entry["loss"] for entry in result.history]
    assert losses[-1] < 0.8 * losses[0], losses


def test_bf16_autocast_trains_on_cpu():
    result = train(cycle_data(), tiny(precision="bf16", epochs=8, lr=1e-2, dropout=0.0), progress=False)
    assert result.precision == "bf16"
    losses = [entry["loss"] for entry in result.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 0.8 * losses[0]


# ------------------------------------------------------------- a diverging run
def test_a_diverging_run_stops_with_a_clear_error_instead_of_metrics(tmp_path):
    from perflaw.errors import TrainingDiverged

    with pytest.raises(TrainingDiverged, match="training diverged in epoch 1: the mean loss is nan"):
        train(random_data(), tiny(lr=1e6, grad_clip=None, epochs=5), progress=False, checkpoint_dir=tmp_path)
    assert not (tmp_path / "last.pt").exists()  # nothing of the diverged epoch was kept


def test_a_non_finite_gradient_is_caught_even_when_the_loss_is_finite(monkeypatch):
    from perflaw.errors import TrainingDiverged

    real_clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_",
                        lambda params, max_norm: real_clip(params, max_norm) * float("inf"))
    with pytest.raises(TrainingDiverged, match="step\\(s\\) had a non-finite gradient norm"):
        train(random_data(), tiny(epochs=1), progress=False)


def test_a_healthy_run_is_not_flagged():
    assert train(random_data(), tiny(lr=1e-2, epochs=2), progress=False).epochs_run == 2


def test_more_sampled_negatives_than_the_catalogue_is_refused():
    from perflaw.errors import PerflawError

    with pytest.raises(PerflawError, match="eval_negatives=30 is not below the catalogue of 25 items"):
        train(random_data(n_items=25), tiny(protocol="sampled", eval_negatives=30), progress=False)
