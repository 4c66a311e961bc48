"""Side-by-side timing with RecBole's SASRec on the same data and settings.

RecBole (pip ``recbole``) is not a perflaw dependency: its requirements pin old
versions (ray<=2.6.3, colorlog 4.7.2, ...), so install it into a separate
environment that still sees the system packages::

    python -m venv --system-site-packages /tmp/recbole_venv
    /tmp/recbole_venv/bin/pip install recbole==1.2.1
    PYTHONPATH=python /tmp/recbole_venv/bin/python benches/recbole_compare.py --users 0.1 --device cpu

Both sides train SASRec, CE loss, 2 layers x 64, max length 50, one epoch over
the same next-item targets, then run one full-ranking validation pass over all
evaluated users. RecBole feeds every prefix as its own sample (batch 2048);
perflaw feeds each user's windows once (batch 256 windows). The script prints
seconds per epoch, seconds per validation pass and the ratios.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beauty.txt"


def write_atomic_file(seqs, folder: Path, name: str) -> None:
    """RecBole's .inter format; the position in the sequence serves as timestamp."""
    path = folder / name / f"{name}.inter"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        out.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for user, items in enumerate(seqs.to_lists(original_ids=True)):
            out.writelines(f"{user}\t{item}\t{t}\n" for t, item in enumerate(items))


def numpy2_shim() -> None:
    """RecBole 1.2.1 aliases NumPy names that NumPy 2 removed; put them back for it."""
    import numpy as np

    for old, new in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if not hasattr(np, old):
            setattr(np, old, new)


def run_recbole(folder: Path, name: str, device: str, threads: int | None) -> dict:
    numpy2_shim()
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    settings = {
        "data_path": str(folder), "dataset": name, "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp", "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 50, "n_layers": 2, "n_heads": 2, "hidden_size": 64, "inner_size": 256,
        "loss_type": "CE", "train_neg_sample_args": None, "epochs": 1, "train_batch_size": 2048,
        "eval_batch_size": 4096, "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
        "metrics": ["Hit", "NDCG"], "topk": [10], "valid_metric": "NDCG@10",
        "device": device, "use_gpu": device.startswith("cuda"), "show_progress": False, "checkpoint_dir": str(folder),
        "log_wandb": False, "seed": 0, "reproducibility": True,
    }
    config = Config(model="SASRec", config_dict=settings)
    if threads:
        torch.set_num_threads(threads)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    start = time.perf_counter()
    trainer._train_epoch(train_data, epoch_idx=0, show_progress=False)
    epoch_s = time.perf_counter() - start
    start = time.perf_counter()
    metrics = trainer.evaluate(valid_data, load_best_model=False, show_progress=False)
    eval_s = time.perf_counter() - start
    return {"epoch_s": epoch_s, "eval_s": eval_s, "valid_ndcg@10": float(metrics["ndcg@10"]),
            "train_samples": len(train_data.dataset)}


def run_perflaw(seqs, device: str) -> dict:
    import perflaw

    config = perflaw.TrainConfig(model="sasrec", layers=2, dim=64, max_len=50, loss="ce", epochs=1,
                                 device=device, patience=None)
    result = perflaw.train(seqs, config, progress=False)
    return {"epoch_s": result.train_s, "eval_s": result.eval_users / result.eval_users_per_s,
            "valid_ndcg@10": result.valid_metrics["ndcg@10"], "train_targets": result.train_tokens}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--users", type=float, default=1.0, help="fraction of users (seeded)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        import recbole  # noqa: F401
    except ImportError:
        print("recbole is not installed here; see this script's docstring", file=sys.stderr)
        return 2
    import torch

    from perflaw.ingest import read_sequences

    if args.threads:
        torch.set_num_threads(args.threads)
    seqs = read_sequences(args.data)
    if args.users < 1.0:
        seqs = seqs.sample_users(args.users, seed=0)
    print(f"{args.data}: {seqs!r}, device {args.device}, torch threads {torch.get_num_threads()}")
    ours = run_perflaw(seqs, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        write_atomic_file(seqs, Path(tmp), "bench")
        theirs = run_recbole(Path(tmp), "bench", args.device, args.threads)
    print(f"{'':10} {'epoch s':>9} {'valid pass s':>13} {'valid ndcg@10 (1 epoch)':>24}")
    for name, row in (("recbole", theirs), ("perflaw", ours)):
        print(f"{name:10} {row['epoch_s']:>9.2f} {row['eval_s']:>13.3f} {row['valid_ndcg@10']:>24.4f}")
    print(f"speed-up: training {theirs['epoch_s'] / ours['epoch_s']:.1f}x, "
          f"evaluation {theirs['eval_s'] / ours['eval_s']:.1f}x "
          f"(recbole samples {theirs['train_samples']}, perflaw targets {ours['train_targets']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
