"""The synthetic generator: determinism, the analytic entropy rate, lengths and duplicates."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

import perflaw
from perflaw import synth


def dense_transition(config: synth.SynthConfig) -> np.ndarray:
    """P written out independently from the chain's parts."""
    chain = synth._chain(config)
    n = config.items
    p = np.full((n, n), config.teleport) * chain.popularity[None, :]
    for i in range(n):
        for j, w in zip(chain.successors[i], chain.weights[i]):
            p[i, j] += (1 - config.teleport) * w
    return (1 - config.repeat) * p + config.repeat * np.eye(n)


def test_same_seed_same_data_and_other_seed_other_data():
    a = synth.generate(users=200, items=80, seed=3)
    assert a.fingerprint() == synth.generate(users=200, items=80, seed=3).fingerprint()
    assert a.fingerprint() != synth.generate(users=200, items=80, seed=4).fingerprint()


def test_stationary_distribution_is_stationary():
    config = synth.SynthConfig(items=60, branching=5, teleport=0.1, repeat=0.3, seed=2)
    p = dense_transition(config)
    assert np.allclose(p.sum(axis=1), 1.0)
    pi = synth._chain(config).stationary
    np.testing.assert_allclose(pi @ p, pi, atol=1e-12)


@pytest.mark.parametrize("repeat", [0.0, 0.4])
def test_entropy_rate_against_the_dense_matrix_and_closed_forms(repeat):
    config = synth.SynthConfig(items=70, branching=6, teleport=0.25, repeat=repeat, seed=9)
    p = dense_transition(config)
    pi = synth._chain(config).stationary
    logs = np.log(np.where(p > 0, p, 1))
    assert synth.entropy_rate(config) == pytest.approx(float(-(pi[:, None] * p * logs).sum()), rel=1e-10)
    # i.i.d. uniform draws with a repeat probability: a closed form
    n = 10
    iid = synth.SynthConfig(items=n, zipf_exponent=0.0, teleport=1.0, branching=1, repeat=repeat)
    stay = repeat + (1 - repeat) / n
    move = (1 - repeat) / n
    expected = -(stay * math.log(stay) + (n - 1) * move * math.log(move))
    assert synth.entropy_rate(iid) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("level", sorted(synth.QUALITY_LEVELS))
def test_empirical_block_entropy_approaches_the_analytic_rate(level):
    config = synth.quality_level(level, users=300, items=60, min_length=1500, max_length=1500, seed=1)
    quality = perflaw.data_quality(synth.generate(config), m=1)
    assert quality.block_entropy == pytest.approx(synth.entropy_rate(config), rel=0.03)


def test_levels_are_ordered_by_entropy():
    rates = [synth.entropy_rate(synth.quality_level(level)) for level in ("low", "medium", "high")]
    assert rates == sorted(rates) and rates[0] < rates[-1] / 3


def test_lengths_respect_bounds_and_mean():
    seqs = synth.generate(users=4000, items=50, mean_length=15, min_length=3, max_length=400, seed=5)
    lengths = seqs.lengths
    assert lengths.min() >= 3 and lengths.max() <= 400
    assert lengths.mean() == pytest.approx(15, rel=0.1)
    assert seqs.n_items <= 50 and seqs.item_vocab.min() >= 1 and seqs.item_vocab.max() <= 50


def test_exact_duplicates():
    seqs = synth.generate(users=400, items=300, duplicate_fraction=0.25, near_duplicate_noise=0.0, seed=2)
    originals = [tuple(s) for s in seqs.to_lists(original_ids=True)[:300]]
    copies = [tuple(s) for s in seqs.to_lists(original_ids=True)[300:]]
    assert len(copies) == 100 and all(c in set(originals) for c in copies)
    noisy = synth.generate(users=400, items=300, duplicate_fraction=0.25, near_duplicate_noise=0.5, seed=2)
    noisy_copies = [tuple(s) for s in noisy.to_lists(original_ids=True)[300:]]
    assert sum(c in set(originals) for c in noisy_copies) < 50
    assert Counter(map(len, noisy_copies)) == Counter(map(len, copies))


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(users=0), "users"),
        (dict(items=1), "items"),
        (dict(branching=0), "branching"),
        (dict(teleport=0.0), "teleport"),
        (dict(teleport=1.5), "teleport"),
        (dict(repeat=1.0), "repeat"),
        (dict(min_length=10, max_length=5), "min_length"),
        (dict(duplicate_fraction=1.0), "duplicate_fraction"),
    ],
)
def test_impossible_configs_are_rejected(overrides, match):
    with pytest.raises(ValueError, match=match):
        synth.SynthConfig(**overrides)


def test_unknown_level():
    with pytest.raises(ValueError, match="unknown quality level"):
        synth.quality_level("perfect")
