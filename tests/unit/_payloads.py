"""Shared helpers for the source parser tests: load a sample, mutate one field by path."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data"
RECEIVED = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
class _Delete:
    def __repr__(self) -> str:  # stable test ids: pytest-xdist workers must collect the same names
        return "DELETE"


DELETE = _Delete()


def load(rel: str) -> dict[str, Any]:
    return json.loads((DATA / rel).read_text())


def mutate(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``mutate(p, "alerts.0.labels", DELETE)``: a deep copy with one field changed or removed."""
    out = copy.deepcopy(payload)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return out
