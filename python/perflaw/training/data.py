"""Training data on the device: every training target once per epoch, batched without loops.

Each user's training part is cut, from its end, into windows of at most
``max_len`` next-item targets; a window row holds ``max_len + 1`` left-padded
items (inputs are the first ``max_len`` columns, targets the last ``max_len``).
All windows live on the device as one tensor; an epoch is a seeded permutation
of its rows, and a batch is a slice of that permutation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from perflaw.sampling import ExclusionIndex
from perflaw.sequences import Sequences
from perflaw.errors import PerflawError

# Batches per length-sorted chunk on the CPU (see epoch_batches).
BUCKET_BATCHES = 16


def training_windows(train: Sequences, max_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left-padded windows covering every training target exactly once.

    Returns
    -------
    windows : (W, max_len + 1) int64
        Items of each window, right-aligned.
    users : (W,) int64
        The user each window comes from.
    input_lengths : (W,) int64
        Real (non-padding) input positions of each window.

    Examples
    --------
    >>> w, u, n = training_windows(Sequences.from_lists([[1, 2, 3, 4], [5]]), max_len=2)
    >>> w.tolist(), u.tolist(), n.tolist()
    ([[2, 3, 4], [0, 1, 2]], [0, 0], [2, 1])
    """
    lengths = train.lengths
    per_user = np.where(lengths >= 2, -(-(lengths - 1) // max_len), 0)  # ceil(targets / max_len)
    users = np.repeat(np.arange(train.n_users, dtype=np.int64), per_user)
    first_window = np.repeat(np.cumsum(per_user) - per_user, per_user)
    j = np.arange(len(users), dtype=np.int64) - first_window  # 0 = the user's last window
    last_target = lengths[users] - 1 - j * max_len  # index within the user
    index = last_target[:, None] - np.arange(max_len, -1, -1, dtype=np.int64)[None, :]
    valid = index >= 0
    windows = np.zeros(index.shape, dtype=np.int64)
    windows[valid] = train.items[(train.offsets[users][:, None] + index)[valid]]
    return windows, users, np.minimum(last_target, max_len)


@dataclass
class TrainData:
    """Training windows on the device, plus what negative sampling needs."""

    windows: torch.Tensor  # (W, max_len + 1)
    users: torch.Tensor  # (W,)
    input_lengths: np.ndarray  # host copy, used to trim all-padding columns on CPU
    n_targets: int  # training targets per epoch
    exclusion: ExclusionIndex | None  # each user's training items, rows = users

    @property
    def n_windows(self) -> int:
        return len(self.input_lengths)

    def steps(self, batch_size: int) -> int:
        """Batches per epoch (the last one may be partial)."""
        return -(-self.n_windows // batch_size)


def build_train_data(
    train: Sequences, max_len: int, n_items: int, device: torch.device, with_exclusion: bool
) -> TrainData:
    """Windows of ``train`` on ``device``; ``with_exclusion`` adds the per-user item sets.

    Raises
    ------
    ValueError
        When no user has two training items (there is nothing to predict).
    """
    windows, users, input_lengths = training_windows(train, max_len)
    if len(windows) == 0:
        raise PerflawError(
            "no training targets: every user has fewer than 2 training items "
            f"(users={train.n_users}, training items={train.tokens})"
        )
    exclusion = None
    if with_exclusion:
        rows = np.repeat(np.arange(train.n_users, dtype=np.int64), train.lengths)
        exclusion = ExclusionIndex.build(rows, train.items, train.n_users, n_items).to(device)
    return TrainData(
        windows=torch.tensor(windows, device=device),
        users=torch.tensor(users, device=device),
        input_lengths=input_lengths,
        n_targets=int(input_lengths.sum()),
        exclusion=exclusion,
    )


def epoch_batches(
    data: TrainData, batch_size: int, generator: torch.Generator, trim: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (inputs, targets, users) for one epoch in a seeded random order.

    On a GPU (``trim=False``) batches are slices of a random permutation with a
    fixed shape, and nothing here waits for the device.

    On the CPU (``trim=True``) batches are drawn "sortish": the permutation is
    cut into chunks of ``BUCKET_BATCHES`` batches, each chunk is sorted by window
    length, and the resulting batches are visited in random order; columns that
    are padding in every row of a batch are then dropped. Every target is still
    seen once per epoch, and outputs do not depend on left padding, so only the
    cost changes (several times less on short-sequence data such as Beauty).
    """
    device = data.windows.device
    order = torch.randperm(data.n_windows, generator=generator, device=device)
    if not trim:
        for start in range(0, data.n_windows, batch_size):
            rows = order[start : start + batch_size]
            windows = data.windows[rows]
            yield windows[:, :-1], windows[:, 1:], data.users[rows]
        return
    order_np = order.numpy()
    lengths = data.input_lengths[order_np]
    chunk = np.arange(len(order_np)) // (batch_size * BUCKET_BATCHES)
    order_np = order_np[np.lexsort((lengths, chunk))]  # stable: ties keep the random order
    starts = torch.arange(0, data.n_windows, batch_size)
    for start in starts[torch.randperm(len(starts), generator=generator)].tolist():
        rows_np = order_np[start : start + batch_size]
        rows = torch.from_numpy(rows_np)
        longest = int(data.input_lengths[rows_np].max())
        windows = data.windows[rows][:, -(longest + 1) :]
        yield windows[:, :-1], windows[:, 1:], data.users[rows]
