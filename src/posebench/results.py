"""The append-only store records live in (the records themselves: `posebench.record`).

A store is a JSON-lines file: one record per line, appended, flushed and fsync'ed as soon as it
exists, so a crash loses at most the line being written (which `read` skips with a warning).
Stores from several machines are merged by record id.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from posebench.record import Record


class ResultStore:
    """An append-only JSON-lines file of records."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def append(self, record: Record) -> None:
        """Append one record durably (flushed and fsync'ed before returning)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record.to_json(), sort_keys=True, default=str)
        with open(self.path, "a", encoding="utf-8") as fh:
            if fh.tell() > 0 and not self._ends_with_newline():
                fh.write("\n")  # a crash mid-line must not glue two records together
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def read(self) -> list[Record]:
        """All complete records; an unreadable line (e.g. cut by a crash) is skipped with a warning."""
        if not self.path.is_file():
            return []
        records = []
        with open(self.path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    records.append(Record.from_json(json.loads(line)))
                except json.JSONDecodeError:
                    warnings.warn(f"{self.path}:{number}: skipping an incomplete record", stacklevel=2)
        return records


def merge(paths: Iterable[str | os.PathLike]) -> list[Record]:
    """Records of several stores (or JSON lists), each record once, in creation order."""
    seen: dict[str, Record] = {}
    for path in paths:
        path = Path(path)
        if path.suffix == ".json":
            records = [Record.from_json(r) for r in json.loads(path.read_text())]
        else:
            records = ResultStore(path).read()
        for record in records:
            seen.setdefault(record.id, record)
    return sorted(seen.values(), key=lambda r: r.created)


def latest_per_trial(records: list[Record], *, study: str | None = None) -> list[Record]:
    """The newest record of each trial (kind, trial id, evaluation, round), e.g. after `--retry-failed`;
    environment probes and other records without a trial are left out."""
    latest: dict[tuple, Record] = {}
    for r in sorted(records, key=lambda r: r.created):
        if r.trial_id is None or (study is not None and r.study != study):
            continue
        latest[(r.kind, r.trial_id, r.evaluation_name, r.round)] = r
    return list(latest.values())


def write_json(path: str | os.PathLike, records: list[Record] | list[dict[str, Any]]) -> None:
    """Write records (or the plain objects `env` and `compress` report) as one JSON list: every command's
    `--json PATH`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps([r.to_json() if isinstance(r, Record) else r for r in records], indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
