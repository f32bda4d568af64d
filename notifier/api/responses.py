"""The API's JSON response class (every route's default, see ``create_app``)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse


def render_json(content: Any) -> bytes:
    """JSON as UTF-8; a lone surrogate in text stored before input was checked becomes ? instead of a
    dropped connection (issue 12)."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8", "replace")


class TolerantJSON(JSONResponse):
    """``render_json`` as a response class."""

    def render(self, content: Any) -> bytes:
        return render_json(content)
