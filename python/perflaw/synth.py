"""Built-in synthetic interaction logs with a known entropy rate.

Users walk a first-order Markov chain over a Zipf-popular catalogue:

* every item has ``branching`` successors, drawn with Zipf popularity, with
  Dirichlet(``concentration``) weights: the collaborative structure;
* with probability ``teleport`` the next item is drawn from global Zipf
  popularity instead, the knob that moves the entropy from low to high;
* with probability ``repeat`` the user consumes the same item again.

So the transition matrix is P = repeat·I + (1 − repeat)·((1 − teleport)·S +
teleport·z), every user starts from its stationary distribution π, and the
entropy rate is exactly H = −Σ_i π_i Σ_j P_ij ln P_ij, reported by
:func:`entropy_rate`. Lengths are log-normal, clipped to [min_length, max_length].
``duplicate_fraction`` of the users are copies of other users, with a fraction
``near_duplicate_noise`` of their items replaced at random: more data that
carries little new information.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from perflaw.sequences import Sequences
from perflaw.errors import PerflawError


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of :func:`generate`; the defaults give a small, realistic log.

    Examples
    --------
    >>> SynthConfig(users=100, items=50).items
    50
    """

    users: int = 5000
    items: int = 1000
    zipf_exponent: float = 1.0
    branching: int = 8
    concentration: float = 0.5
    teleport: float = 0.2
    repeat: float = 0.0
    mean_length: float = 12.0
    min_length: int = 5
    max_length: int = 200
    duplicate_fraction: float = 0.0
    near_duplicate_noise: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _require(self.users >= 1, f"users must be >= 1, got {self.users}")
        _require(self.items >= 2, f"items must be >= 2, got {self.items}")
        _require(1 <= self.branching <= self.items, f"branching must be in 1..items, got {self.branching}")
        _require(self.zipf_exponent >= 0, f"zipf_exponent must be >= 0, got {self.zipf_exponent}")
        _require(self.concentration > 0, f"concentration must be > 0, got {self.concentration}")
        for name in ("teleport", "repeat", "duplicate_fraction", "near_duplicate_noise"):
            value = getattr(self, name)
            _require(0.0 <= value <= 1.0, f"{name} must be in [0, 1], got {value}")
        # teleport > 0 keeps the chain irreducible and aperiodic, so π is unique
        _require(self.teleport > 0.0, f"teleport must be > 0, got {self.teleport}")
        _require(self.repeat < 1.0, "repeat must be < 1, or every user repeats one item forever")
        _require(self.duplicate_fraction < 1.0, "duplicate_fraction must be < 1: someone must be copied")
        _require(1 <= self.min_length <= self.max_length,
                 f"need 1 <= min_length <= max_length, got {self.min_length}, {self.max_length}")
        _require(self.mean_length >= 1, f"mean_length must be >= 1, got {self.mean_length}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise PerflawError(message)


# Named settings from low to high entropy, used by `perflaw demo` and the sweeps.
QUALITY_LEVELS = {
    "low": dict(teleport=0.02, branching=3, concentration=0.3),
    "medium": dict(teleport=0.15, branching=8, concentration=0.5),
    "high": dict(teleport=0.6, branching=32, concentration=1.0),
}


def quality_level(level: str, **overrides: Any) -> SynthConfig:
    """The named preset (``"low"``, ``"medium"`` or ``"high"`` entropy), with overrides.

    Examples
    --------
    >>> quality_level("low", users=10).teleport
    0.02
    """
    if level not in QUALITY_LEVELS:
        raise PerflawError(f"unknown quality level {level!r}; choose one of {sorted(QUALITY_LEVELS)}")
    return SynthConfig(**{**QUALITY_LEVELS[level], **overrides})


# ------------------------------------------------------------------ chain
@dataclass(frozen=True)
class _Chain:
    popularity: np.ndarray  # z, shape (items,)
    successors: np.ndarray  # (items, branching) item indices
    weights: np.ndarray  # (items, branching), rows sum to 1
    stationary: np.ndarray  # π, shape (items,)


def _zipf(items: int, exponent: float) -> np.ndarray:
    weights = np.arange(1, items + 1, dtype=np.float64) ** -exponent
    return weights / weights.sum()


def _chain(config: SynthConfig) -> _Chain:
    return _build_chain(config.items, config.zipf_exponent, config.branching, config.concentration,
                        config.teleport, config.seed)


@lru_cache(maxsize=16)
def _build_chain(items: int, exponent: float, branching: int, concentration: float, teleport: float,
                 seed: int) -> _Chain:
    """The chain depends on these fields only (not on users, lengths or repeats), so it is cached."""
    rng = np.random.default_rng([seed, 1])
    z = _zipf(items, exponent)
    successors = np.concatenate(
        [_popular_sample(rng, z, branching, rows) for rows in np.array_split(np.arange(items), max(1, items // 256))]
    )
    weights = rng.dirichlet(np.full(branching, concentration), size=items)
    return _Chain(z, successors, weights, _stationary(z, successors, weights, teleport))


def _popular_sample(rng: np.random.Generator, z: np.ndarray, k: int, rows: np.ndarray) -> np.ndarray:
    """k distinct items per row, drawn without replacement with probabilities z (Gumbel top-k)."""
    keys = np.log(z)[None, :] + rng.gumbel(size=(len(rows), len(z)))
    return np.argpartition(-keys, k - 1, axis=1)[:, :k]


def _stationary(z, successors, weights, teleport: float) -> np.ndarray:
    """π = π P by power iteration on the sparse successors plus the teleport (rate 1 − teleport)."""
    pi = z.copy()
    for _ in range(100_000):
        mass = np.bincount(successors.ravel(), weights=(pi[:, None] * weights).ravel(), minlength=len(z))
        new = (1 - teleport) * mass + teleport * z
        new /= new.sum()
        if np.abs(new - pi).sum() < 1e-15:
            return new
        pi = new
    return pi


def entropy_rate(config: SynthConfig) -> float:
    """The exact entropy rate of the generating chain, in nats per item.

    Examples
    --------
    >>> iid = SynthConfig(items=4, zipf_exponent=0.0, teleport=1.0, branching=1)
    >>> round(entropy_rate(iid), 6) == round(float(np.log(4)), 6)
    True
    """
    chain = _chain(config)
    total = 0.0
    for rows in np.array_split(np.arange(config.items), max(1, config.items // 256)):
        p = np.zeros((len(rows), config.items))
        local = np.repeat(np.arange(len(rows)), config.branching)
        np.add.at(p, (local, chain.successors[rows].ravel()), (1 - config.teleport) * chain.weights[rows].ravel())
        p = (1 - config.repeat) * (p + config.teleport * chain.popularity[None, :])
        p[np.arange(len(rows)), rows] += config.repeat
        logs = np.log(np.where(p > 0, p, 1.0))
        total += float(-(chain.stationary[rows, None] * p * logs).sum())
    return total


# -------------------------------------------------------------- sampling
def _lengths(config: SynthConfig, rng: np.random.Generator, users: int) -> np.ndarray:
    """Log-normal lengths (σ = 0.8, a long tail as in real logs) clipped to the bounds."""
    sigma = 0.8
    mu = np.log(config.mean_length) - sigma**2 / 2
    raw = np.rint(rng.lognormal(mu, sigma, size=users)).astype(np.int64)
    return np.clip(raw, config.min_length, config.max_length)


def _walk(config: SynthConfig, chain: _Chain, rng: np.random.Generator, lengths: np.ndarray) -> np.ndarray:
    """Items (0-based) of all users, as a (users, max length) array; steps vectorised over users."""
    users, steps = len(lengths), int(lengths.max())
    out = np.zeros((users, steps), dtype=np.int64)
    pop_cdf = np.cumsum(chain.popularity)
    succ_cdf = np.cumsum(chain.weights, axis=1)
    state = np.minimum(np.searchsorted(np.cumsum(chain.stationary), rng.random(users)), config.items - 1)
    for t in range(steps):
        out[:, t] = state
        u_repeat, u_teleport, u_pick = rng.random((3, users))
        teleported = np.minimum(np.searchsorted(pop_cdf, u_pick), config.items - 1)
        branch = (u_pick[:, None] > succ_cdf[state]).sum(axis=1)
        followed = chain.successors[state, np.minimum(branch, config.branching - 1)]
        moved = np.where(u_teleport < config.teleport, teleported, followed)
        state = np.where(u_repeat < config.repeat, state, moved)
    return out


def generate(config: SynthConfig | None = None, **overrides: Any) -> Sequences:
    """A seeded synthetic log: one sequence of item ids (1..items) per user.

    Parameters
    ----------
    config : SynthConfig, optional
        Defaults to ``SynthConfig()``; keyword ``overrides`` replace its fields.

    Returns
    -------
    Sequences
        Users ``0..users-1``; item ids are the chain's states plus one, so the
        vocabulary is the integers 1..items (items never drawn are left out).

    Examples
    --------
    >>> seqs = generate(users=50, items=30, seed=1)
    >>> seqs.n_users, bool(seqs.lengths.min() >= 5)
    (50, True)
    >>> generate(users=50, items=30, seed=1).fingerprint() == seqs.fingerprint()
    True
    """
    config = SynthConfig(**{**(config or SynthConfig()).to_dict(), **overrides})
    rng = np.random.default_rng([config.seed, 2])
    chain = _chain(config)
    n_copies = int(round(config.duplicate_fraction * config.users))
    n_original = config.users - n_copies
    lengths = _lengths(config, rng, n_original)
    walks = _walk(config, chain, rng, lengths)
    if n_copies:
        source = rng.integers(0, n_original, size=n_copies)
        copies = walks[source].copy()
        noise = rng.random(copies.shape) < config.near_duplicate_noise
        copies[noise] = rng.integers(0, config.items, size=int(noise.sum()))
        walks = np.concatenate([walks, copies])
        lengths = np.concatenate([lengths, lengths[source]])
    mask = np.arange(walks.shape[1])[None, :] < lengths[:, None]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Sequences.from_arrays(offsets, walks[mask] + 1)
