"""Per-user ApEn on no-repeat data depends on lengths alone; corpus statistics do not.

Run:  python benches/degeneracy.py [--data ../shared/data/beauty.txt]

Prints D′ computed by perflaw and by the closed form Σ N / |ln((N-2)/(N-1))|,
then the data measures of the real file and of a copy whose items are shuffled
across the whole corpus (same users, same lengths, no sequential structure).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import perflaw

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "beauty.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    seqs = perflaw.read_sequences(args.data)
    lengths = seqs.lengths
    repeats = sum(len(set(s.tolist())) < len(s) for s in seqs)
    print(f"{args.data}: {seqs.n_users:,} users, {seqs.tokens:,} tokens, users repeating an item: {repeats}")
    closed = float(np.sum(lengths / np.abs(np.log((lengths - 2) / (lengths - 1)))))
    print(f"D′ (m=2): perflaw {perflaw.data_quality(seqs, m=2).d_prime:,.1f}, closed form {closed:,.1f}")
    items = seqs.item_vocab[seqs.items - 1].copy()
    np.random.default_rng(args.seed).shuffle(items)
    shuffled = perflaw.Sequences.from_arrays(seqs.offsets, items)
    print("| data | D′ (m=2) | D′ pooled | mean ApEn | H(X2|X1) | H(X3|X1,X2) | LZ rate |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, data in (("real", seqs), ("items shuffled", shuffled)):
        q1, q2 = perflaw.data_quality(data, m=1), perflaw.data_quality(data, m=2)
        print(f"| {name} | {q2.d_prime:,.0f} | {q2.d_prime_pooled:,.0f} | {q2.apen_mean:.4f} | "
              f"{q1.block_entropy:.3f} | {q2.block_entropy:.3f} | {q2.lz_entropy_rate:.3f} |")


if __name__ == "__main__":
    main()
