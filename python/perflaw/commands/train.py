"""``perflaw train DATA --out DIR``: train one model, write DIR/result.json and DIR/best.pt.

Every documented ``TrainConfig`` field has a flag of the same name
(``max_len`` -> ``--max-len``), generated from the dataclass with its help,
allowed values and default (:mod:`perflaw.commands.flags`); flags left out
keep the config's defaults. Running the same command again with the same
``--out`` resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from perflaw.commands.flags import add_config_flags, values_from_args
from perflaw.errors import PerflawError


def register(subparsers: Any) -> None:
    """Add the ``train`` sub-command."""
    from perflaw.ingest import FORMATS
    from perflaw.tracking import add_track_flags
    from perflaw.training.config import TrainConfig

    parser = subparsers.add_parser(
        "train",
        help="train and evaluate a sequential recommender (needs torch)",
        description=(
            "Train a sequential recommender on DATA with a leave-one-out split and write "
            "DIR/result.json (test metrics at the best validation epoch, sizes, timing) and "
            "DIR/best.pt. Training runs up to --epochs epochs and stops early when the "
            "validation metric has not improved for --patience evaluations. Rerunning with "
            "the same --out resumes from DIR/last.pt."
        ),
    )
    parser.add_argument("data", metavar="DATA", help="interaction file (any format perflaw.read_sequences reads)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--format", default="auto", choices=FORMATS, metavar="FORMAT",
                        help="input format; one of " + ", ".join(FORMATS) + " (default: auto, detected)")
    parser.set_defaults(config_fields=add_config_flags(parser, TrainConfig))
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's; small models are often fastest with 1)")
    parser.add_argument("--json", action="store_true", help="print the result (result.json's content) on stdout")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (without a terminal there is none anyway, only a line per epoch)")
    add_track_flags(parser)
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    """The ``TrainConfig`` the flags describe (unset flags keep the defaults)."""
    from perflaw.training.config import TrainConfig

    return TrainConfig(**values_from_args(args, TrainConfig, args.config_fields))


def run(args: argparse.Namespace) -> int:
    """Handler: read the data, train, write DIR/result.json atomically."""
    from perflaw.atomic import write_json_atomic
    from perflaw.ingest import read_sequences
    from perflaw.tracking import TrackedTrain, make_tracker
    from perflaw.training import train

    config = config_from_args(args)  # bad settings fail before the data is read
    tracker = make_tracker(args.track, args.track_uri, args.track_dir, experiment="perflaw-train")
    if args.torch_threads is not None:
        if args.torch_threads < 1:
            raise PerflawError(f"--torch-threads must be >= 1, got {args.torch_threads}")
        import torch

        torch.set_num_threads(args.torch_threads)
    seqs = read_sequences(args.data, format=args.format)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run_training = train
    if tracker is not None:  # one run, named after DIR, resumed with it
        run_training = TrackedTrain(tracker, name=out.resolve().name,
                                    params={"data": str(Path(args.data).resolve()), "data_fingerprint": seqs.fingerprint()})
    result = run_training(seqs, config, progress=not args.no_progress, checkpoint_dir=out)
    row = result.to_dict() | {"data": str(Path(args.data).resolve())}
    write_json_atomic(out / "result.json", row)
    if args.json:
        json.dump(row, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    print(
        f"{config.model} {config.layers}x{config.dim} on {args.data}: "
        f"test hr@10={row['hr@10']:.4f} ndcg@10={row['ndcg@10']:.4f} mrr={row['mrr']:.4f} "
        f"(best epoch {row['best_epoch']}/{row['epochs_run']}, {row['tokens_per_s']:,.0f} tokens/s, "
        f"{row['wall_s']:.0f} s) -> {out / 'result.json'}"
    )
    return 0
