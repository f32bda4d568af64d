"""A response-time sparkline as static inline SVG: no JavaScript, no external file, no inline style.

``sparkline`` is pure: values in, markup out. The line spans the values in order (oldest left), scaled
from 0 ms at the bottom to the largest value at the top; a failed run (``None``) breaks the line and is
marked by a short bar at the bottom (class ``f``), so an outage is visible even when nothing answered.
Colours come from the page's stylesheet (classes ``spark``, ``l``, ``f``): the CSP forbids inline style,
and presentation attributes would ignore a dark theme.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 120
HEIGHT = 24
PAD = 1.5  # keeps the stroke inside the box at the top and bottom


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


Segment = list[tuple[float, float]]


def points(values: Sequence[float | None], width: float = WIDTH, height: float = HEIGHT) -> list[Segment]:
    """The polyline segments (x, y in SVG units) for ``values``; a ``None`` ends a segment."""
    known = [v for v in values if v is not None]
    if not known:
        return []
    top = max(known) or 1.0
    step = width / (len(values) - 1) if len(values) > 1 else 0.0
    segments: list[Segment] = []
    current: Segment = []
    for i, value in enumerate(values):
        if value is None:
            if current:
                segments.append(current)
            current = []
            continue
        x = i * step if len(values) > 1 else width / 2
        y = PAD + (height - 2 * PAD) * (1 - max(value, 0.0) / top)
        current.append((round(x, 1), round(y, 1)))
    if current:
        segments.append(current)
    return segments


def sparkline(values: Sequence[float | None], label: str, width: int = WIDTH, height: int = HEIGHT) -> Markup:
    """An ``<svg role="img">`` drawing ``values`` (ms, oldest first), titled with ``label`` (escaped)."""
    title = escape(label)
    parts = [f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'preserveAspectRatio="none" aria-label="{title}" xmlns="http://www.w3.org/2000/svg"><title>{title}</title>']
    for segment in points(values, width, height):
        if len(segment) == 1:  # a lone answer between failures: a dot, a polyline of one point draws nothing
            x, y = segment[0]
            parts.append(f'<circle class="l" cx="{_fmt(x)}" cy="{_fmt(y)}" r="1.2"/>')
        else:
            coords = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in segment)
            parts.append(f'<polyline class="l" points="{coords}"/>')
    step = width / (len(values) - 1) if len(values) > 1 else 0.0
    for i, value in enumerate(values):
        if value is None:
            x = i * step if len(values) > 1 else width / 2
            parts.append(f'<rect class="f" x="{_fmt(max(x - 1, 0))}" y="{height - 4}" width="2" height="4"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from numbers and the escaped label only
