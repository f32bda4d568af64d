"""The response-time sparkline: pure values -> static SVG (no script, no inline style, escaped title)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from notifier.statuspage.sparkline import HEIGHT, PAD, WIDTH, points, sparkline

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))  # well-formed XML, or this raises


def test_the_largest_value_is_at_the_top_and_zero_at_the_bottom_left_to_right_in_order() -> None:
    (segment,) = points([0.0, 50.0, 100.0])
    assert [x for x, _ in segment] == [0.0, WIDTH / 2, WIDTH]
    assert segment[0][1] == pytest.approx(HEIGHT - PAD)
    assert segment[1][1] == pytest.approx(HEIGHT / 2)
    assert segment[2][1] == pytest.approx(PAD)


@pytest.mark.parametrize(
    ("values", "lengths"),
    [
        ([10.0, 20.0, None, 30.0, 40.0], [2, 2]),  # a failed run breaks the line
        ([None, 10.0, 20.0], [2]),
        ([10.0, None, None, 20.0], [1, 1]),
        ([None, None], []),  # nothing answered: no line at all
        ([], []),
        ([7.0], [1]),
    ],
)
def test_failed_runs_split_the_line_into_segments(values: list[float | None], lengths: list[int]) -> None:
    assert [len(s) for s in points(values)] == lengths


def test_equal_values_and_all_zero_values_stay_inside_the_box() -> None:
    for values in ([5.0, 5.0, 5.0], [0.0, 0.0]):
        for segment in points(values):
            assert all(0 <= x <= WIDTH and PAD <= y <= HEIGHT - PAD for x, y in segment)


def test_the_svg_draws_a_polyline_per_segment_and_a_mark_per_failed_run() -> None:
    root = parse(sparkline([10.0, 20.0, None, 30.0, 40.0, None], "web: 4 answered"))
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert len(root.findall(f"{SVG}polyline")) == 2
    assert len(root.findall(f"{SVG}rect")) == 2
    assert root.findtext(f"{SVG}title") == "web: 4 answered" == root.get("aria-label")


def test_a_lone_answer_between_failures_is_a_dot() -> None:
    root = parse(sparkline([None, 12.0, None], "x"))
    assert len(root.findall(f"{SVG}circle")) == 1 and not root.findall(f"{SVG}polyline")


def test_no_script_no_inline_style_and_the_label_is_escaped() -> None:
    hostile = '<script>alert(1)</script> "quoted" & more'
    text = str(sparkline([1.0, 2.0, None], hostile))
    assert "<script" not in text and "style=" not in text
    root = parse(text)
    assert root.findtext(f"{SVG}title") == hostile  # escaped in the markup, the same text when read
    assert re.search(r'aria-label="[^"]*&#34;quoted&#34; &amp; more"', text)
