"""pytest-benchmark suite for the trainer and the evaluator on Beauty.

Run:  PYTHONPATH=python python -m pytest benches/bench_train.py --benchmark-only
(set OMP_NUM_THREADS / --threads to match the machine). For a table of
tokens/s, users/s and FLOP rates, run ``benches/train_table.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from perflaw.eval import evaluate, leave_one_out, ranking_task  # noqa: E402
from perflaw.training.data import build_train_data, epoch_batches  # noqa: E402
from perflaw.training.losses import next_item_loss  # noqa: E402
from perflaw.training.models import build_model  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beauty.txt"
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(scope="module")
def beauty():
    if not DATA.exists():
        pytest.skip(f"Beauty data not found at {DATA}")
    from perflaw.ingest import read_sequences

    seqs = read_sequences(DATA)
    return seqs, leave_one_out(seqs)


@pytest.mark.parametrize("model_name", ["llama", "sasrec", "hstu"])
def test_train_step(benchmark, beauty, model_name):
    seqs, split = beauty
    torch.manual_seed(0)
    model = build_model(model_name, seqs.n_items, 2, 64, None, 50, dropout=0.3).to(DEVICE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = build_train_data(split.train, 50, seqs.n_items, DEVICE, with_exclusion=False)
    batches = list(epoch_batches(data, 256, torch.Generator(device=DEVICE).manual_seed(0), DEVICE.type == "cpu"))
    state = {"i": 0}

    def step():
        inputs, targets, _ = batches[state["i"] % len(batches)]
        state["i"] += 1
        valid = inputs != 0
        loss = next_item_loss("ce", model(inputs)[valid], targets[valid], model.item_table())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    benchmark.pedantic(step, rounds=10, warmup_rounds=2)
    benchmark.extra_info["targets_per_step"] = data.n_targets / len(batches)


@pytest.mark.parametrize("protocol", ["full", "sampled"])
def test_evaluate_all_users(benchmark, beauty, protocol):
    seqs, split = beauty
    model = build_model("sasrec", seqs.n_items, 2, 64, None, 50).to(DEVICE)
    task = ranking_task(split, "valid", 50, DEVICE, protocol)
    negatives = 100 if protocol == "sampled" else None
    benchmark.pedantic(lambda: evaluate(model, task, protocol, negatives, batch_size=1024), rounds=3, warmup_rounds=1)
    benchmark.extra_info["users"] = task.n_users
