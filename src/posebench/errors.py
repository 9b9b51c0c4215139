"""Typed errors with messages that say what went wrong and how to fix it.

The command line prints `error: <message>` for any `PosebenchError` and exits with status 2; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PosebenchError(Exception):
    """Base class: a user-facing problem with an actionable message."""


class InvalidInputError(PosebenchError, ValueError):
    """An argument or file content is malformed (bad imgsz, zero iterations, corrupt file...)."""


class ModelNotFoundError(PosebenchError, FileNotFoundError):
    """A model file or architecture name could not be found."""


class UnknownRuntimeError(PosebenchError, KeyError):
    """A runtime name is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class RuntimeNotInstalledError(PosebenchError, ImportError):
    """A runtime is known but its library (or worker environment) is not installed."""


class RuntimeUnavailableError(PosebenchError):
    """A runtime is installed but cannot run here (no GPU, unsupported model...)."""


class ModelLoadError(PosebenchError):
    """A runtime could not load a model artifact."""


def failure(exc: PosebenchError) -> dict[str, str]:
    """How a trial that raised `exc` is recorded: "skipped" when the runtime cannot run it here at all (no GPU,
    a quantized variant on torch), else "error"."""
    status = "skipped" if isinstance(exc, RuntimeUnavailableError) else "error"
    return {"status": status, "error": str(exc), "error_type": type(exc).__name__}


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean "x"?' for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f' Did you mean "{close[0]}"?' if close else ""
