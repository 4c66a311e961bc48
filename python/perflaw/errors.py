"""The exceptions a user can cause, as one family under :class:`PerflawError`.

``PerflawError`` subclasses ``ValueError``, so code written against the
earlier ``ValueError``s keeps working; ``except perflaw.PerflawError`` catches
every expected failure (bad input, bad settings, a diverged run, a missing
optional dependency) and nothing else, so a bug still surfaces as itself.

Examples
--------
>>> import perflaw
>>> try:
...     perflaw.TrainConfig(layers=0)
... except perflaw.PerflawError as error:
...     print(type(error).__name__, "-", error)
PerflawError - layers must be >= 1, got 0
"""

from __future__ import annotations


class PerflawError(ValueError):
    """Bad input, settings or files: something the user can fix, named in the message."""


class PerflawTypeError(PerflawError, TypeError):
    """A value of the wrong type (also a ``TypeError``)."""


class MissingFileError(PerflawError, FileNotFoundError):
    """A file or folder that should be there is not (also a ``FileNotFoundError``)."""


class NotGroupedError(PerflawError):
    """A file streamed as grouped by user turned out not to be: a user's rows came back
    after other users' rows. Raised only where the caller asked to be told, so that it can
    start again with external grouping."""


class TrainingDiverged(PerflawError):
    """The loss or the model's parameters became NaN or infinite during training."""


class MissingDependency(PerflawError, ImportError):
    """An optional dependency is not installed; the message says which extra installs it."""

    def __init__(self, what: str, extra: str, package: str) -> None:
        super().__init__(f"{what} needs {package}: pip install \"perflaw[{extra}]\"")
        self.extra = extra
        self.package = package


def require(module: str, what: str, extra: str) -> object:
    """Import an optional dependency, or raise :class:`MissingDependency` with the install hint.

    Examples
    --------
    >>> require("math", "this example", "train").__name__
    'math'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is not None and error.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there but one of its own imports fails: show that
        raise MissingDependency(what, extra, module.split(".")[0]) from None
