"""Typed errors with messages that say what went wrong and how to fix it, and the exit statuses.

The command line prints `error: <message>` for any `PosebenchError` and exits with status 2; any
other exception is a bug and keeps its traceback (status 1). Commands that run trials (bench, val,
study, report) end with `exit_status(records)`: a script can tell "all ran" from "some were skipped"
from "some crashed" from "nothing ran".
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any


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


# Exit statuses (documented in the README): 0 and 2 as usual; 3-6 say what happened to the trials.
EXIT_OK = 0  # every trial asked for succeeded
EXIT_BUG = 1  # an unexpected exception (a traceback is printed): please report it
EXIT_INPUT = 2  # bad input or usage: nothing ran
EXIT_PARTIAL_SKIPPED = 3  # some trials succeeded; the others were skipped (runtime not installed / cannot run here)
EXIT_PARTIAL_FAILED = 4  # some trials succeeded; at least one crashed (status "error")
EXIT_NONE_SKIPPED = 5  # nothing succeeded: every trial was skipped (not installed / cannot run here)
EXIT_NONE_FAILED = 6  # nothing succeeded: at least one trial crashed
EXIT_GOAL_MISSED = 7  # tune: everything ran, but no candidate meets the accuracy tolerance or latency budget


def exit_status(records: Iterable[Any]) -> int:
    """The exit status for the trials behind `records` (`posebench.record.Record`s: "ok", "skipped" or "error")."""
    statuses = [r.status for r in records]
    ok = statuses.count("ok")
    crashed = any(s not in ("ok", "skipped") for s in statuses)
    if ok == len(statuses):
        return EXIT_OK if statuses else EXIT_NONE_SKIPPED
    if ok:
        return EXIT_PARTIAL_FAILED if crashed else EXIT_PARTIAL_SKIPPED
    return EXIT_NONE_FAILED if crashed else EXIT_NONE_SKIPPED


def closest(name: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The choice most like `name` (difflib's ratio at least `cutoff`), or None."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean "x"?' for the closest choice, or an empty string."""
    close = closest(name, choices, cutoff=0.5)
    return f' Did you mean "{close}"?' if close else ""


def unknown_key(key: str, known: Iterable[str]) -> str:
    """'unknown key (did you mean "x"?)', or the known keys when none is close: a settings file's typo, named."""
    known = list(known)
    close = closest(key, known)
    return "unknown key" + (f' (did you mean "{close}"?)' if close else f" (known: {', '.join(known)})")


def read_yaml_file(path: Path, *, what: str, error: type[InvalidInputError] = InvalidInputError) -> Any:
    """The YAML document at `path` (None read as {}); a missing file or broken YAML is one clear `error`."""
    import yaml

    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from exc
