"""Leave-one-out evaluation: the split, full and sampled ranking, HR@K / NDCG@K / MRR.

Split
    Each user's last item is the test target and the second-to-last the
    validation target; the rest is training data. Users with fewer than three
    interactions are used for training only.

Protocols
    ``full``: the target is ranked against the whole catalogue; the items the
    user interacted with before the target are masked (the target itself is
    always scored, even when it repeats an earlier item).
    ``sampled``: the target is ranked against ``k`` negatives drawn uniformly,
    with replacement, from the items outside the user's history and the target.
    The draw is a counter-based hash of (seed, split, user, j), so it is the same
    on every device and for every batch size.

Ranks and ties
    A target's rank is the number of other candidates scoring at least as high
    as it (ties count against the model, so a constant scorer gets the worst
    rank); NaN scores count as -inf, and masked items are never candidates. HR@K = [rank < K], NDCG@K = [rank < K] / log2(rank + 2),
    MRR = 1 / (rank + 1), each averaged over users.

The metric math (:func:`metrics_from_ranks`) works on plain NumPy arrays; the
batched device evaluator (:func:`ranking_task`, :func:`rank_targets`,
:func:`evaluate`) imports torch only when called. The negatives are drawn by
:mod:`perflaw.sampling`, which the trainer shares; slow per-user references
of the ranks live in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from perflaw.sampling import ExclusionIndex, hash_bits, is_torch
from perflaw.sequences import Sequences
from perflaw.errors import PerflawError, PerflawTypeError

METRIC_KS = (1, 5, 10, 20, 50)
METRIC_NAMES = tuple([f"hr@{k}" for k in METRIC_KS] + [f"ndcg@{k}" for k in METRIC_KS] + ["mrr"])
SPLITS = ("valid", "test")
PROTOCOLS = ("full", "sampled")
_SPLIT_TAG = {"valid": 1, "test": 2}


# ===================================================================== metrics
def metrics_from_ranks(ranks: Any, ks: Iterable[int] = METRIC_KS) -> dict[str, float]:
    """HR@K, NDCG@K and MRR from 0-based ranks (0 = the target is first).

    Parameters
    ----------
    ranks : array-like of int
        One rank per user (NumPy array, list or torch tensor).
    ks : iterable of int
        Cut-offs.

    Examples
    --------
    >>> m = metrics_from_ranks([0, 1, 20])
    >>> m["hr@1"], round(m["ndcg@5"], 4), round(m["mrr"], 4)
    (0.3333333333333333, 0.5436, 0.5159)
    """
    ranks = _as_numpy(ranks)
    if ranks.ndim != 1 or ranks.size == 0:
        raise PerflawError(f"ranks must be a non-empty 1-D array, got shape {ranks.shape}")
    if ranks.dtype.kind not in "iu":
        raise PerflawTypeError(f"ranks must be integers, got dtype {ranks.dtype}")
    if ranks.min() < 0:
        raise PerflawError(f"ranks must be >= 0, got {ranks.min()}")
    ranks = ranks.astype(np.float64)
    gains = 1.0 / np.log2(ranks + 2.0)
    metrics: dict[str, float] = {}
    ks = [int(k) for k in ks]
    for k in ks:
        metrics[f"hr@{k}"] = float(np.mean(ranks < k))
    for k in ks:
        metrics[f"ndcg@{k}"] = float(np.mean(np.where(ranks < k, gains, 0.0)))
    metrics["mrr"] = float(np.mean(1.0 / (ranks + 1.0)))
    return metrics


# ======================================================================= split
@dataclass(frozen=True)
class LeaveOneOut:
    """A leave-one-out split of ``seqs``.

    Attributes
    ----------
    seqs : Sequences
        The full data.
    train : Sequences
        Every user's training part (all but the last two items for evaluated users,
        everything for users with fewer than three).
    eval_users : numpy.ndarray
        Indices (into ``seqs``) of the users with at least three interactions.

    Examples
    --------
    >>> split = leave_one_out(Sequences.from_lists([[1, 2, 3, 4], [5, 6]]))
    >>> split.train.to_lists(original_ids=True), split.eval_users.tolist()
    ([[1, 2], [5, 6]], [0])
    >>> split.targets("valid").tolist(), split.prefix("test").to_lists()
    ([3], [[1, 2, 3]])
    """

    seqs: Sequences
    train: Sequences
    eval_users: np.ndarray

    def targets(self, which: str) -> np.ndarray:
        """Dense target item per evaluated user (``which`` is "valid" or "test")."""
        ends = self.seqs.offsets[1:][self.eval_users]
        return self.seqs.items[ends - (2 if _split(which) == "valid" else 1)]

    def prefix(self, which: str) -> Sequences:
        """Items before the target, per evaluated user: the model's input and the masked history."""
        drop = 2 if _split(which) == "valid" else 1
        lengths = self.seqs.lengths[self.eval_users] - drop
        return _head(self.seqs, self.eval_users, lengths)


def leave_one_out(seqs: Sequences) -> LeaveOneOut:
    """Split ``seqs`` into training sequences and validation / test targets.

    Raises
    ------
    ValueError
        When the data is empty or no user has three interactions to evaluate on.

    Examples
    --------
    >>> leave_one_out(Sequences.from_lists([[1, 2, 3]])).train.tokens
    1
    """
    if not isinstance(seqs, Sequences):
        raise PerflawTypeError(f"expected perflaw.Sequences, got {type(seqs).__name__}")
    if seqs.n_users == 0 or seqs.tokens == 0:
        raise PerflawError(f"the data is empty: {seqs!r}")
    lengths = seqs.lengths
    evaluated = lengths >= 3
    if not evaluated.any():
        raise PerflawError(
            f"no user has the 3 interactions leave-one-out needs (longest has {lengths.max()}); "
            "every user would be training-only"
        )
    train_lengths = np.where(evaluated, lengths - 2, lengths)
    train = _head(seqs, np.arange(seqs.n_users), train_lengths)
    return LeaveOneOut(seqs=seqs, train=train, eval_users=np.flatnonzero(evaluated))


def left_pad(seqs: Sequences, width: int) -> np.ndarray:
    """Each user's last ``width`` items, right-aligned and left-padded with 0.

    Examples
    --------
    >>> left_pad(Sequences.from_lists([[1, 2, 3], [4]]), 2).tolist()
    [[2, 3], [0, 4]]
    """
    lengths = np.minimum(seqs.lengths, width)
    columns = np.arange(width)
    # column c holds the item (width - c) steps before the end of the sequence
    back = width - columns[None, :]
    index = seqs.offsets[1:, None] - back
    valid = back <= lengths[:, None]
    out = np.zeros((seqs.n_users, width), dtype=np.int64)
    out[valid] = seqs.items[index[valid]]
    return out


def _head(seqs: Sequences, users: np.ndarray, lengths: np.ndarray) -> Sequences:
    """The first ``lengths[i]`` items of user ``users[i]``."""
    offsets = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    starts = seqs.offsets[users]
    gather = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1] - starts, lengths)
    return Sequences(offsets, seqs.items[gather], seqs.user_ids[users], seqs.item_vocab)


def sampled_negatives(
    index: ExclusionIndex, rows: Any, users: Any, k: int, seed: int, which: str
) -> Any:
    """``k`` negatives per row, uniform over the items not excluded for that row.

    Parameters
    ----------
    index : ExclusionIndex
        Excluded items per row (history and target).
    rows : array (B,)
        Rows of ``index`` to draw for.
    users : array (B,)
        Global user index of each row (keys the hash, so a user's draw never
        depends on the batch).
    k, seed : int
        Negatives per user and seed.
    which : {"valid", "test"}
        The split, so validation and test draw different negatives.
    """
    if is_torch(rows):
        import torch

        draws = torch.arange(k, device=rows.device, dtype=torch.int64)
    else:
        draws = np.arange(k, dtype=np.int64)
        rows = np.asarray(rows, dtype=np.int64)
        users = np.asarray(users, dtype=np.int64)
    bits = hash_bits(seed, _SPLIT_TAG[_split(which)], users[:, None], draws[None, :])
    return index.draw(rows[:, None], bits, 32)


# ============================================================ device evaluator
@dataclass
class RankingTask:
    """One split's evaluation inputs, laid out on the device.

    Build with :func:`ranking_task`.
    """

    which: str
    inputs: Any  # (users, max_len) left-padded item ids
    lengths: np.ndarray  # real input length per user (host copy)
    targets: Any  # (users,)
    users: Any  # (users,) index into the data of each row's user
    history_offsets: np.ndarray  # host CSR offsets of the masked history
    history_rows: Any  # task row of each history token
    history_items: Any
    exclusion: ExclusionIndex | None  # history and target, for the sampled protocol
    other_candidates: Any  # (users,) full-protocol candidates besides the target
    n_items: int

    @property
    def n_users(self) -> int:
        return len(self.lengths)


def ranking_task(
    split: LeaveOneOut,
    which: str,
    max_len: int,
    device: Any = "cpu",
    protocol: str = "full",
    n_items: int | None = None,
) -> RankingTask:
    """Put the inputs, targets and masks of split ``which`` on ``device``.

    Users are ordered by input length (stable), so that each batch can drop the
    columns that are padding in all its rows; ``task.users`` says which user
    each row is. Metrics are averages, so the order does not change them.

    Examples
    --------
    >>> split = leave_one_out(Sequences.from_lists([[1, 2, 3, 4, 5], [6, 7, 8]]))
    >>> task = ranking_task(split, "test", max_len=3)
    >>> task.inputs.tolist(), task.users.tolist()
    ([[0, 6, 7], [2, 3, 4]], [1, 0])
    """
    import torch

    which, protocol = _split(which), _protocol(protocol)
    n_items = split.seqs.n_items if n_items is None else n_items
    order = np.argsort(np.minimum(split.prefix(which).lengths, max_len), kind="stable")
    prefix = split.prefix(which).select(order)
    targets = split.targets(which)[order]
    n = len(targets)
    rows = np.repeat(np.arange(n, dtype=np.int64), prefix.lengths)
    excluded = ExclusionIndex.build(  # history and target
        np.concatenate([rows, np.arange(n)]),
        np.concatenate([prefix.items, targets]),
        n_rows=n,
        n_items=n_items,
    )
    tensor = lambda a: torch.tensor(np.asarray(a), dtype=torch.int64, device=device)  # noqa: E731
    return RankingTask(
        which=which,
        inputs=tensor(left_pad(prefix, max_len)),
        lengths=np.minimum(prefix.lengths, max_len),
        targets=tensor(targets),
        users=tensor(split.eval_users[order]),
        history_offsets=prefix.offsets.copy(),
        history_rows=tensor(rows),
        history_items=tensor(prefix.items),
        exclusion=excluded.to(device) if protocol == "sampled" else None,
        other_candidates=tensor(n_items - excluded.counts),
        n_items=n_items,
    )


def rank_targets(
    score_fn: Callable[[Any], Any],
    task: RankingTask,
    protocol: str = "full",
    eval_negatives: int | None = None,
    seed: int = 0,
    batch_size: int = 1024,
    trim: bool = False,
) -> Any:
    """Rank every target of ``task``, in batches on the task's device.

    Parameters
    ----------
    score_fn : callable
        Maps left-padded inputs (B, L) to scores (B, n_items + 1).
    trim : bool
        Drop the columns that are padding in every row of a batch first. The
        lengths are known on the host, so this costs no device sync, and the
        models' outputs do not depend on left padding.

    Returns
    -------
    torch.Tensor
        int64 ranks (users,), on the task's device.
    """
    import torch

    protocol = _protocol(protocol)
    if protocol == "sampled":
        if eval_negatives is None or eval_negatives < 1:
            raise PerflawError(f"the sampled protocol needs eval_negatives >= 1, got {eval_negatives}")
        if task.exclusion is None:
            raise PerflawError("this task was built for the full protocol; build it with protocol='sampled'")
    ranks = []
    for start in range(0, task.n_users, batch_size):
        stop = min(start + batch_size, task.n_users)
        inputs = task.inputs[start:stop]
        if trim:
            inputs = inputs[:, -max(1, int(task.lengths[start:stop].max())) :]
        scores = score_fn(inputs).float()
        targets = task.targets[start:stop, None]
        target_scores = scores.gather(1, targets)
        if protocol == "full":
            history = slice(task.history_offsets[start], task.history_offsets[stop])
            scores[:, 0] = -torch.inf
            scores[task.history_rows[history] - start, task.history_items[history]] = -torch.inf
            scores.scatter_(1, targets, target_scores)
            batch_ranks = _count_at_least(scores, target_scores) - 1
            worst = task.other_candidates[start:stop]
        else:
            rows = torch.arange(start, stop, device=scores.device)
            negatives = sampled_negatives(
                task.exclusion, rows, task.users[start:stop], eval_negatives, seed, task.which
            )
            batch_ranks = _count_at_least(scores.gather(1, negatives), target_scores)
            worst = eval_negatives
        # A NaN candidate never reaches a finite target, as -inf would not. A NaN
        # or -inf target ties with every candidate: it ranks last.
        target_scores = target_scores[:, 0]
        last = torch.isnan(target_scores) | (target_scores == -torch.inf)
        ranks.append(torch.where(last, worst, batch_ranks))
    return torch.cat(ranks)


def evaluate(
    model: Any,
    task: RankingTask,
    protocol: str = "full",
    eval_negatives: int | None = None,
    seed: int = 0,
    batch_size: int = 1024,
    autocast_dtype: Any = None,
) -> dict[str, float]:
    """Metrics of a trained model on ``task`` (see the module docstring).

    ``model.score_last(inputs)`` must return (B, n_items + 1) scores; the model
    is put in eval mode for the call and restored afterwards.
    """
    import torch

    was_training = model.training
    model.eval()
    device = task.inputs.device
    try:
        with torch.inference_mode(), torch.autocast(
            device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
        ):
            ranks = rank_targets(
                model.score_last, task, protocol, eval_negatives, seed, batch_size,
                trim=True,
            )
    finally:
        model.train(was_training)
    return metrics_from_ranks(ranks.cpu().numpy())


# ===================================================================== helpers
def _split(which: Any) -> str:
    if which not in SPLITS:
        raise PerflawError(f"unknown split {which!r}; choose one of {list(SPLITS)}")
    return which


def _protocol(protocol: Any) -> str:
    if protocol not in PROTOCOLS:
        raise PerflawError(f"unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}")
    return protocol


def _count_at_least(values: Any, threshold: Any) -> Any:
    """Per row, how many ``values`` are >= ``threshold`` (torch, int64).

    Summing the comparison as uint8 into int32 avoids the int64 copy that a
    plain bool sum makes (about twice as fast on CPU).
    """
    import torch

    hits = (values >= threshold).view(torch.uint8)
    return torch.sum(hits, dim=1, dtype=torch.int32).to(torch.int64)


def _as_numpy(x: Any) -> np.ndarray:
    if is_torch(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)
