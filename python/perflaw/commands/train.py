"""``perflaw train DATA --out DIR``: train one model, write DIR/result.json and DIR/best.pt.

Every ``TrainConfig`` field has a flag of the same name (``max_len`` ->
``--max-len``); flags left out keep the config's defaults. Running the same
command again with the same ``--out`` resumes an interrupted run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# flag name -> (type, help); the dest is the TrainConfig field of the same name.
_CONFIG_FLAGS: dict[str, tuple[Any, str]] = {
    "model": (str, "llama (default), hstu or sasrec"),
    "layers": (int, "number of blocks (default 2)"),
    "dim": (int, "embedding size (default 64)"),
    "heads": (int, "attention heads (default: automatic, head size near 32)"),
    "max_len": (int, "longest input sequence (default 50)"),
    "loss": (str, "ce (default), bce or sampled_softmax"),
    "negatives": (int, "negatives per position for bce (1) / sampled_softmax (100)"),
    "epochs": (int, "maximum epochs (default 200)"),
    "batch_size": (int, "training windows per step (default 256)"),
    "lr": (float, "AdamW learning rate (default 1e-3)"),
    "weight_decay": (float, "AdamW weight decay on matrices (default 0)"),
    "warmup_steps": (int, "linear warm-up steps (default 100)"),
    "min_lr_ratio": (float, "final/peak learning rate of the cosine decay (default 0.1)"),
    "grad_clip": (float, "gradient-norm clip, 0 disables (default 1.0)"),
    "dropout": (float, "dropout (default: llama/hstu 0.3, sasrec 0.5)"),
    "seed": (int, "random seed (default 0)"),
    "device": (str, "auto (default), cpu, cuda, cuda:N"),
    "protocol": (str, "evaluation: full (default) or sampled"),
    "eval_negatives": (int, "negatives of the sampled protocol (2499 paper, 100 SASRec)"),
    "patience": (int, "early-stopping patience in evaluations, 0 disables (default 10)"),
    "valid_metric": (str, "metric that picks the best epoch (default ndcg@10)"),
    "eval_every": (int, "validate every N epochs (default 1)"),
    "eval_batch_size": (int, "users per evaluation batch (default 1024)"),
    "precision": (str, "auto (bf16 on GPU, fp32 on CPU), bf16 or fp32"),
    "n_items": (int, "item table size (default: the data's catalogue)"),
}


def register(subparsers: Any) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser(
        "train",
        help="train and evaluate a sequential recommender (needs torch)",
        description=(
            "Train a sequential recommender on DATA with a leave-one-out split and write "
            "DIR/result.json (test metrics at the best validation epoch, sizes, timing) and "
            "DIR/best.pt. Rerunning with the same --out resumes from DIR/last.pt."
        ),
    )
    parser.add_argument("data", metavar="DATA", help="interaction file (any format perflaw.read_sequences reads)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--format", default="auto", help="input format (default: detect)")
    for name, (kind, text) in _CONFIG_FLAGS.items():
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None, help=text)
    parser.add_argument("--compile", action="store_true", default=None, help="use torch.compile")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    """The ``TrainConfig`` the flags describe (unset flags keep the defaults)."""
    from perflaw.training.config import TrainConfig

    values = {name: getattr(args, name) for name in list(_CONFIG_FLAGS) + ["compile"]}
    values = {name: value for name, value in values.items() if value is not None}
    for name in ("patience", "grad_clip"):  # 0 switches the feature off
        if values.get(name) == 0:
            values[name] = None
    return TrainConfig(**values)


def run(args: argparse.Namespace) -> int:
    """Handler: read the data, train, write DIR/result.json atomically."""
    from perflaw.ingest import read_sequences
    from perflaw.training import train

    config = config_from_args(args)  # bad settings fail before the data is read
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    seqs = read_sequences(args.data, format=args.format)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = train(seqs, config, progress=not args.quiet, checkpoint_dir=out)
    row = result.to_dict() | {"data": str(Path(args.data).resolve())}
    _write_json_atomic(row, out / "result.json")
    print(
        f"{config.model} {config.layers}x{config.dim} on {args.data}: "
        f"test hr@10={row['hr@10']:.4f} ndcg@10={row['ndcg@10']:.4f} mrr={row['mrr']:.4f} "
        f"(best epoch {row['best_epoch']}/{row['epochs_run']}, {row['tokens_per_s']:,.0f} tokens/s, "
        f"{row['wall_s']:.0f} s) -> {out / 'result.json'}"
    )
    return 0


def _write_json_atomic(payload: dict[str, Any], path: Path) -> None:
    from perflaw.atomic import write_json_atomic

    write_json_atomic(path, payload)
