"""perflaw: the Performance Law and data quality for sequential recommenders.

The names below are loaded lazily, so ``import perflaw`` stays cheap and never
imports torch: the data-quality half must work without the training stack.
"""

from __future__ import annotations

import importlib
from typing import Any

try:
    from importlib.metadata import version as _dist_version

    __version__ = _dist_version("perflaw")
except Exception:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

# public name -> module that defines it
_EXPORTS = {
    "Sequences": "perflaw.sequences",
    "read_sequences": "perflaw.ingest",
    "write_sequences": "perflaw.ingest",
    "iter_batches": "perflaw.ingest",
    "detect_format": "perflaw.ingest",
    "apen": "perflaw.quality",
    "data_quality": "perflaw.quality",
    "DataQuality": "perflaw.quality",
    "coding_stats": "perflaw.quality",
    "fit": "perflaw.law",
    "fit_groups": "perflaw.law",
    "custom_form": "perflaw.law",
    "Fit": "perflaw.law",
    "train": "perflaw.training",
    "TrainConfig": "perflaw.training",
    "TrainResult": "perflaw.training",
    "PerflawError": "perflaw.errors",
    "PerflawTypeError": "perflaw.errors",
    "TrainingDiverged": "perflaw.errors",
    "MissingDependency": "perflaw.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


# Subpackages reachable as attributes (``perflaw.law``, ``perflaw.sweep`` ...) without an import.
_SUBMODULES = {"law", "sweep", "report", "ingest", "quality", "blocks", "sequences", "eval", "training", "synth", "cluster"}


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None and name in _SUBMODULES:
        module_name = f"perflaw.{name}"
    if module_name is None:
        raise AttributeError(f"module 'perflaw' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
