"""Training and evaluation throughput on Beauty, printed as a table.

For each model and size it trains ``--epochs`` epochs with ``perflaw.train``
(the real loop: data on the device, the configured precision) and reports
seconds per epoch, training tokens/s (next-item targets per second), full-ranking
validation users/s, the achieved model FLOP rate and, on a GPU, the model FLOPs
utilisation against the chip's dense bf16 peak.

Model FLOPs count useful work only (padding is not counted): per real target,
3 x (2 x body matmul parameters + 4 x layers x context x attention width
+ 2 x dim x n_items for the output softmax) for ce.

Usage::

    PYTHONPATH=python python benches/train_table.py --device cpu --threads 1
    PYTHONPATH=python python benches/train_table.py --device cuda --layers 2 4 8 --dims 64 256 1024
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beauty.txt"
# Dense bf16 peak of the chips we may be lent (FLOP/s), for MFU.
PEAK_BF16 = {"H200": 989.5e12, "H100": 989.5e12, "A100": 312e12}


def model_flops_per_epoch(result: dict, train_windows_lengths: np.ndarray) -> float:
    """Useful training FLOPs of one epoch (forward + backward = 3 x forward)."""
    from perflaw.sizing import attention_shape

    width = attention_shape(result["model"], result["dim"], result["heads"]).width
    targets = float(train_windows_lengths.sum())
    contexts = float((train_windows_lengths * (train_windows_lengths + 1) / 2).sum())
    body = 2.0 * result["params_non_embedding"] * targets
    attention = 4.0 * result["layers"] * width * contexts
    output = 2.0 * result["dim"] * result["n_items"] * targets
    return 3.0 * (body + attention + output)


def peak_flops(device: str, cpu_peak_gflops: float | None) -> float | None:
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return cpu_peak_gflops * 1e9 if cpu_peak_gflops else None
    name = torch.cuda.get_device_name()
    return next((peak for chip, peak in PEAK_BF16.items() if chip in name), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="+", default=["llama", "sasrec", "hstu"])
    parser.add_argument("--layers", nargs="+", type=int, default=[2])
    parser.add_argument("--dims", nargs="+", type=int, default=[64])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--users", type=float, default=1.0, help="fraction of users to keep (seeded)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--cpu-peak-gflops", type=float, default=None,
                        help="nominal fp32 peak of the CPU threads used, for MFU on CPU "
                             "(e.g. 78.4 for one 2.45 GHz AVX2 core with two FMA units)")
    args = parser.parse_args(argv)

    import torch

    import perflaw
    from perflaw.eval import leave_one_out
    from perflaw.ingest import read_sequences
    from perflaw.training.data import training_windows

    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path(args.data).exists():
        print(f"data not found: {args.data}", file=sys.stderr)
        return 2
    seqs = read_sequences(args.data)
    if args.users < 1.0:
        seqs = seqs.sample_users(args.users, seed=0)
    _, _, window_lengths = training_windows(leave_one_out(seqs).train, 50)
    rows = []
    header = (f"{'model':8} {'size':>8} {'params':>10} {'epoch s':>8} {'tokens/s':>10} "
              f"{'eval users/s':>12} {'GFLOP/s':>9} {'MFU':>6}")
    print(f"data {args.data}: {seqs!r}; device {args.device}, torch threads {torch.get_num_threads()}")
    print(header)
    for model in args.models:
        for layers in args.layers:
            for dim in args.dims:
                config = perflaw.TrainConfig(
                    model=model, layers=layers, dim=dim, max_len=50, epochs=args.epochs,
                    batch_size=args.batch_size, device=args.device, patience=None, compile=args.compile,
                )
                row = perflaw.train(seqs, config, progress=False).to_dict()
                achieved = model_flops_per_epoch(row, window_lengths) * row["epochs_run"] / row["train_s"]
                peak = peak_flops(row["device"], args.cpu_peak_gflops)
                row |= {"epoch_s": row["train_s"] / row["epochs_run"], "model_flops_per_s": achieved,
                        "mfu": achieved / peak if peak else None}
                rows.append(row)
                mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "-"
                print(f"{model:8} {f'{layers}x{dim}':>8} {row['params']:>10,} {row['epoch_s']:>8.2f} "
                      f"{row['tokens_per_s']:>10,.0f} {row['eval_users_per_s']:>12,.0f} "
                      f"{achieved / 1e9:>9.1f} {mfu:>6}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
