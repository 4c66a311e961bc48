"""Leave-one-out evaluation against independent per-user references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perflaw.eval import METRIC_NAMES, leave_one_out, left_pad, metrics_from_ranks, sampled_negatives
from perflaw.sampling import ExclusionIndex, hash_bits
from perflaw.sequences import Sequences
from reference import ranks_full, ranks_sampled


# ------------------------------------------------------------ slow references
def reference_rank_full(scores_row, target, history):
    """Rank among items 1..n, history masked except the target, ties against the target."""
    target_score = scores_row[target]
    if math.isnan(target_score):
        target_score = -math.inf
    rank = 0
    for item in range(1, len(scores_row)):
        if item == target or item in set(history):
            continue
        score = scores_row[item]
        if math.isnan(score):
            score = -math.inf
        if score >= target_score:
            rank += 1
    return rank


def reference_metrics(ranks):
    out = {}
    for k in (1, 5, 10, 20, 50):
        out[f"hr@{k}"] = sum(1.0 for r in ranks if r < k) / len(ranks)
    for k in (1, 5, 10, 20, 50):
        out[f"ndcg@{k}"] = sum(1.0 / math.log2(r + 2) for r in ranks if r < k) / len(ranks)
    out["mrr"] = sum(1.0 / (r + 1) for r in ranks) / len(ranks)
    return out


def random_problem(rng, users=40, n_items=60, tie_levels=None):
    if tie_levels:  # few distinct values, so ties are common
        scores = rng.integers(0, tie_levels, size=(users, n_items + 1)).astype(np.float64)
    else:
        scores = rng.normal(size=(users, n_items + 1))
    targets = rng.integers(1, n_items + 1, size=users)
    history = [rng.choice(np.arange(1, n_items + 1), size=rng.integers(0, 20), replace=True) for _ in range(users)]
    return scores, targets, history


# --------------------------------------------------------------- metric math
@pytest.mark.parametrize("tie_levels", [None, 3])
def test_ranks_full_and_metrics_match_reference(tie_levels):
    rng = np.random.default_rng(1)
    scores, targets, history = random_problem(rng, tie_levels=tie_levels)
    scores[0, 5] = np.nan
    ranks = ranks_full(scores, targets, history)
    expected = [reference_rank_full(scores[u], targets[u], history[u]) for u in range(len(targets))]
    assert ranks.tolist() == expected
    got, want = metrics_from_ranks(ranks), reference_metrics(expected)
    assert list(got) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert got[name] == pytest.approx(want[name], rel=1e-12, abs=1e-15)


def test_target_in_history_is_still_ranked():
    scores = np.array([[0.0, 0.3, 0.9, 0.1]])
    # item 2 repeats an earlier interaction; it must not be masked away
    assert ranks_full(scores, [2], history=[[2, 3]]).tolist() == [0]


def test_constant_scores_get_the_worst_rank():
    scores = np.zeros((2, 11))
    assert ranks_full(scores, [3, 7]).tolist() == [9, 9]
    assert ranks_sampled([0.0, 1.0], [[0.0, 0.0], [0.5, 0.5]]).tolist() == [2, 0]


def test_metrics_known_values():
    m = metrics_from_ranks(np.array([0, 4, 9, 60]))
    assert m["hr@1"] == 0.25 and m["hr@5"] == 0.5 and m["hr@10"] == 0.75 and m["hr@50"] == 0.75
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(6)) / 4)
    assert m["mrr"] == pytest.approx((1 + 1 / 5 + 1 / 10 + 1 / 61) / 4)


@pytest.mark.parametrize(
    "ranks,error", [([], ValueError), ([-1, 2], ValueError), ([0.5], TypeError), ([[1, 2]], ValueError)]
)
def test_metrics_reject_bad_ranks(ranks, error):
    with pytest.raises(error):
        metrics_from_ranks(np.asarray(ranks))


def test_ranks_full_rejects_bad_targets():
    with pytest.raises(ValueError, match="targets must lie in 1..3"):
        ranks_full(np.zeros((1, 4)), [4])
    with pytest.raises(ValueError, match="history items must lie"):
        ranks_full(np.zeros((1, 4)), [1], history=[[0]])


# ---------------------------------------------------------------------- split
def test_leave_one_out_matches_reference():
    rng = np.random.default_rng(2)
    lists = [rng.integers(1, 30, size=rng.integers(1, 9)).tolist() for _ in range(50)]
    seqs = Sequences.from_lists(lists)
    split = leave_one_out(seqs)
    dense = seqs.to_lists()
    assert split.train.to_lists() == [s[:-2] if len(s) >= 3 else s for s in dense]
    evaluated = [u for u, s in enumerate(dense) if len(s) >= 3]
    assert split.eval_users.tolist() == evaluated
    assert split.targets("valid").tolist() == [dense[u][-2] for u in evaluated]
    assert split.targets("test").tolist() == [dense[u][-1] for u in evaluated]
    assert split.prefix("valid").to_lists() == [dense[u][:-2] for u in evaluated]
    assert split.prefix("test").to_lists() == [dense[u][:-1] for u in evaluated]


def test_left_pad_matches_reference():
    lists = [[1, 2, 3, 4, 5], [6], [7, 8]]
    seqs = Sequences.from_lists(lists)
    for width in (1, 2, 3, 6):
        expected = [[0] * (width - min(len(s), width)) + s[-width:] for s in seqs.to_lists()]
        assert left_pad(seqs, width).tolist() == expected


def test_split_errors():
    with pytest.raises(ValueError, match="no user has the 3 interactions"):
        leave_one_out(Sequences.from_lists([[1, 2], [3]]))
    with pytest.raises(ValueError, match="empty"):
        leave_one_out(Sequences.from_lists([]))
    with pytest.raises(TypeError, match="expected perflaw.Sequences"):
        leave_one_out([[1, 2, 3]])


# ------------------------------------------------------------------ sampling
def test_exclusion_draw_is_exactly_uniform_over_the_complement():
    # Enumerating every value of a small bit budget gives the exact distribution:
    # each allowed item is hit floor or ceil of 2**bits / allowed times, never an excluded one.
    n_items, bits = 11, 10
    excluded = {0: [2, 3, 3, 7, 11], 1: [], 2: list(range(1, 12))}
    rows = [r for r, items in excluded.items() for _ in items]
    index = ExclusionIndex.build(rows, [i for items in excluded.values() for i in items], 3, n_items)
    values = np.arange(2**bits, dtype=np.int64)
    for row, items in excluded.items():
        drawn = index.draw(np.full(len(values), row, dtype=np.int64), values, bits)
        allowed = sorted(set(range(1, n_items + 1)) - set(items)) or list(range(1, n_items + 1))
        counts = np.bincount(drawn, minlength=n_items + 1)
        assert set(np.flatnonzero(counts)) == set(allowed)
        share = 2**bits / len(allowed)
        assert counts[allowed].min() >= math.floor(share) and counts[allowed].max() <= math.ceil(share)


def test_exclusion_draw_on_torch_equals_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 5, size=40)
    items = rng.integers(1, 30, size=40)
    index = ExclusionIndex.build(rows, items, 5, 30)
    query_rows = rng.integers(0, 5, size=200)
    bits = rng.integers(0, 2**31, size=200)
    expected = index.draw(query_rows, bits, 31)
    got = index.to("cpu").draw(torch.tensor(query_rows), torch.tensor(bits), 31)
    assert got.tolist() == expected.tolist()


def test_sampled_negatives_avoid_history_and_target_and_are_stable():
    rng = np.random.default_rng(4)
    n_items, users = 50, 30
    history = [rng.integers(1, n_items + 1, size=rng.integers(0, 30)) for _ in range(users)]
    targets = rng.integers(1, n_items + 1, size=users)
    rows = np.concatenate([np.repeat(np.arange(users), [len(h) for h in history]), np.arange(users)])
    index = ExclusionIndex.build(rows, np.concatenate(history + [targets]), users, n_items)
    global_ids = np.arange(users) + 1000
    negatives = sampled_negatives(index, np.arange(users), global_ids, 200, seed=7, which="test")
    for u in range(users):
        forbidden = set(history[u].tolist()) | {int(targets[u])}
        assert not forbidden & set(negatives[u].tolist())
        assert negatives[u].min() >= 1 and negatives[u].max() <= n_items
    # a user's draw depends on (seed, split, user), not on which other users share the batch
    again = sampled_negatives(index, np.arange(10, 20), global_ids[10:20], 200, seed=7, which="test")
    assert (again == negatives[10:20]).all()
    other_seed = sampled_negatives(index, np.arange(users), global_ids, 200, seed=8, which="test")
    other_split = sampled_negatives(index, np.arange(users), global_ids, 200, seed=7, which="valid")
    assert (other_seed != negatives).mean() > 0.5 and (other_split != negatives).mean() > 0.5


def test_hash_bits_look_uniform():
    bits = hash_bits(0, 1, np.arange(500)[:, None], np.arange(200)[None, :])
    assert bits.min() >= 0 and bits.max() < 2**32
    # 16 equal bins of the top 4 bits: chi-square with 15 degrees of freedom
    counts = np.bincount((bits >> 28).ravel(), minlength=16)
    expected = bits.size / 16
    assert ((counts - expected) ** 2 / expected).sum() < 50  # p < 1e-5 for a fair hash


# ------------------------------------------------------------ device evaluator
class FixedScores:
    """A scorer returning a fixed score matrix, batch after batch, in task order."""

    def __init__(self, scores):
        import torch

        self.scores = torch.tensor(scores, dtype=torch.float32)
        self.position = 0

    def __call__(self, inputs):
        batch = self.scores[self.position : self.position + inputs.shape[0]].clone()
        self.position += inputs.shape[0]
        return batch


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
@pytest.mark.parametrize("which", ["valid", "test"])
def test_device_full_ranking_equals_reference(batch_size, which):
    pytest.importorskip("torch")
    from perflaw.eval import rank_targets, ranking_task

    rng = np.random.default_rng(5)
    lists = [rng.integers(1, 40, size=rng.integers(1, 12)).tolist() for _ in range(60)]
    seqs = Sequences.from_lists(lists)
    split = leave_one_out(seqs)
    task = ranking_task(split, which, max_len=4)
    scores = rng.integers(0, 6, size=(task.n_users, seqs.n_items + 1)).astype(np.float32)  # many ties
    ranks = rank_targets(FixedScores(scores), task, batch_size=batch_size).numpy()
    position = np.searchsorted(split.eval_users, task.users.numpy())  # task rows -> split order
    history = [split.prefix(which).to_lists()[p] for p in position]
    targets = split.targets(which)[position]
    expected = [reference_rank_full(scores[u], targets[u], history[u]) for u in range(task.n_users)]
    assert ranks.tolist() == expected
    assert task.inputs.numpy().tolist() == [[0] * (4 - len(h[-4:])) + h[-4:] for h in history]
    assert sorted(task.users.tolist()) == split.eval_users.tolist()


@pytest.mark.parametrize("batch_size", [3, 1000])
def test_device_sampled_ranking_equals_reference(batch_size):
    pytest.importorskip("torch")
    from perflaw.eval import rank_targets, ranking_task

    rng = np.random.default_rng(6)
    lists = [rng.integers(1, 80, size=rng.integers(3, 15)).tolist() for _ in range(40)]
    seqs = Sequences.from_lists(lists)
    split = leave_one_out(seqs)
    task = ranking_task(split, "test", max_len=5, protocol="sampled")
    scores = rng.normal(size=(task.n_users, seqs.n_items + 1)).astype(np.float32)
    k = 25
    ranks = rank_targets(FixedScores(scores), task, "sampled", k, seed=3, batch_size=batch_size).numpy()
    position = np.searchsorted(split.eval_users, task.users.numpy())  # task rows -> split order
    targets = split.targets("test")[position]
    history = [split.prefix("test").to_lists()[p] for p in position]
    index = ExclusionIndex.build(
        np.concatenate([np.repeat(np.arange(task.n_users), [len(h) for h in history]), np.arange(task.n_users)]),
        np.concatenate([np.concatenate(history), targets]),
        task.n_users, seqs.n_items,
    )
    negatives = sampled_negatives(index, np.arange(task.n_users), task.users.numpy(), k, 3, "test")
    for u in range(task.n_users):
        assert targets[u] not in negatives[u] and not set(history[u]) & set(negatives[u])
        expected = sum(1 for item in negatives[u] if scores[u, item] >= scores[u, targets[u]])
        assert ranks[u] == expected


def test_evaluate_of_a_model_matches_its_scores():
    torch = pytest.importorskip("torch")
    from perflaw.eval import evaluate, ranking_task
    from perflaw.training.models import build_model

    torch.manual_seed(0)
    rng = np.random.default_rng(7)
    lists = [rng.integers(1, 30, size=rng.integers(3, 10)).tolist() for _ in range(25)]
    seqs = Sequences.from_lists(lists)
    split = leave_one_out(seqs)
    model = build_model("sasrec", seqs.n_items, 1, 8, None, 6, dropout=0.5)
    task = ranking_task(split, "test", max_len=6)
    metrics = evaluate(model, task, batch_size=4)
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        scores = model.score_last(task.inputs).numpy()
    position = np.searchsorted(split.eval_users, task.users.numpy())  # task rows -> split order
    history = [split.prefix("test").to_lists()[p] for p in position]
    targets = split.targets("test")[position]
    expected = [reference_rank_full(scores[u], targets[u], history[u]) for u in range(len(targets))]
    for name, value in reference_metrics(expected).items():
        assert metrics[name] == pytest.approx(value, rel=1e-12, abs=1e-15)


def test_rank_targets_rejects_mismatched_protocol():
    pytest.importorskip("torch")
    from perflaw.eval import rank_targets, ranking_task

    split = leave_one_out(Sequences.from_lists([[1, 2, 3, 4]]))
    full_task = ranking_task(split, "test", max_len=3)
    with pytest.raises(ValueError, match="build it with protocol='sampled'"):
        rank_targets(FixedScores(np.zeros((1, 5))), full_task, "sampled", 3)
    with pytest.raises(ValueError, match="eval_negatives >= 1"):
        rank_targets(FixedScores(np.zeros((1, 5))), ranking_task(split, "test", 3, protocol="sampled"), "sampled")
    with pytest.raises(ValueError, match="unknown protocol"):
        ranking_task(split, "test", 3, protocol="partial")


@pytest.mark.parametrize("protocol", ["full", "sampled"])
def test_device_ranking_treats_nan_as_minus_infinity(protocol):
    pytest.importorskip("torch")
    from perflaw.eval import rank_targets, ranking_task

    seqs = Sequences.from_lists([[1, 2, 3, 4], [2, 3, 5, 6], [6, 5, 4, 1]])
    split = leave_one_out(seqs)
    task = ranking_task(split, "test", max_len=3, protocol=protocol)
    position = np.searchsorted(split.eval_users, task.users.numpy())
    targets = split.targets("test")[position]
    scores = np.random.default_rng(8).normal(size=(3, seqs.n_items + 1)).astype(np.float32)
    scores[0, targets[0]] = np.nan  # a NaN target ranks last
    scores[1, :] = np.nan
    scores[1, targets[1]] = 0.0  # NaN candidates never outscore a real target
    k = 4
    ranks = rank_targets(FixedScores(scores), task, protocol, k if protocol == "sampled" else None).tolist()
    if protocol == "full":
        history = [split.prefix("test").to_lists()[p] for p in position]
        assert ranks == [reference_rank_full(scores[u], targets[u], history[u]) for u in range(3)]
        assert ranks[0] == seqs.n_items - len(set(history[0]) | {targets[0]}) and ranks[1] == 0
    else:
        assert ranks[0] == k and ranks[1] == 0
