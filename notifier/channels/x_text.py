"""X's length rules: weighted length by twitter-text, and splitting a long update into a numbered thread.

Weights come from ``twitter-text-parser`` (X's published rules: a URL counts 23, most emoji and CJK
characters count 2). Every post of a thread ends with a footer that carries the update's marker and
``i/n``, so reconcile can find each part by itself; the first part also carries the status page link.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

from twitter_text import parse_tweet
from twitter_text.config import config as _twitter_config
from twitter_text.extract_urls import extract_urls_with_indices

MAX_WEIGHTED = 280
_RULES = _twitter_config["defaults"]
_URL_WEIGHT = int(_RULES["transformed_url_length"])
# Below U+1100 every character weighs 1 (X's first weight range, 0-4351, at the scale) and the only
# emoji are (c) and (r): tests/unit/test_x_text.py checks both against twitter-text's own tables.
_LIGHT_END = "\u1100"
_LIGHT_EMOJI = ("\u00a9", "\u00ae")
_LINE_ENDINGS = re.compile(r"\r\n|\r")


@lru_cache(maxsize=4096)  # render() measures the final parts again for Rendering.info
def weighted_length(text: str) -> int:
    """X's weighted length. Text made only of characters below U+1100 (Latin, Greek, Cyrillic, ... and the
    marker's "·"), with no emoji, is counted here: one per character, 23 per URL, after twitter-text's
    own NFC and line-ending normalisation and its own URL extraction. Anything else, or any emoji, goes
    to ``parse_tweet``. Same result; the emoji scan and the per-character loop were 6 % of the thread
    pool worker's CPU (issue 14 profile)."""
    normal = _LINE_ENDINGS.sub("\n", unicodedata.normalize("NFC", text))
    if normal and max(normal) < _LIGHT_END and not any(e in normal for e in _LIGHT_EMOJI):
        urls = extract_urls_with_indices(normal)
        return len(normal) + sum(_URL_WEIGHT - len(u["url"]) for u in urls)
    return int(parse_tweet(text).weightedLength)


def footer(url: str, marker: str, index: int, total: int) -> str:
    """The tail of part ``index`` (1-based) of ``total``: link on the first part, marker on all."""
    tag = f"{marker} {index}/{total}" if total > 1 else marker
    return f"{url} {tag}" if url and index == 1 else tag


def part_pattern(marker: str, index: int, total: int) -> re.Pattern[str]:
    """Matches part ``index`` of ``total`` in a post's text (X may rewrite links, never the marker)."""
    if total > 1:
        return re.compile(re.escape(f"{marker} {index}/{total}") + r"(?![0-9])")
    # "#INC4·3" must not match "#INC4·30", nor a part of a thread
    return re.compile(re.escape(marker) + r"(?![0-9])(?! [0-9]+/[0-9]+)")


Measure = Callable[[str], int]


def compose(body: str, url: str, marker: str, limit: int = MAX_WEIGHTED,
            measure: Measure = weighted_length) -> tuple[str, ...]:
    """One post when it fits, else a numbered thread whose every part fits ``limit`` by ``measure``."""
    body = body.strip()
    single = _join(body, footer(url, marker, 1, 1))
    if measure(single) <= limit:
        return (single,)
    total = 2
    for _ in range(6):  # the footer's width depends on the number of parts; settle it
        parts = _split(body, url, marker, total, limit, measure)
        if len(parts) == total:
            return tuple(_join(chunk, footer(url, marker, i + 1, total)) for i, chunk in enumerate(parts))
        total = len(parts)
    raise ValueError("cannot split this update into a thread; shorten it")


def _join(chunk: str, tail: str) -> str:
    return f"{chunk}\n\n{tail}" if chunk else tail


def _split(body: str, url: str, marker: str, total: int, limit: int, measure: Measure) -> list[str]:
    tokens = [t for t in re.split(r"(\s+)", body) if t]
    chunks: list[str] = []
    current = ""

    def fits(text: str) -> bool:
        index = len(chunks) + 1
        return measure(_join(text.strip(), footer(url, marker, index, max(total, index)))) <= limit

    while tokens:
        token = tokens.pop(0)
        candidate = current + token
        if fits(candidate):
            current = candidate
            continue
        if current.strip():
            chunks.append(current.strip())
            current = ""
            if not token.isspace():
                tokens.insert(0, token)
            continue
        # one token longer than a whole post: cut it at the longest prefix that fits
        lo, hi = 1, len(token)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(token[:mid]):
                lo = mid
            else:
                hi = mid - 1
        chunks.append(token[:lo])
        if token[lo:]:
            tokens.insert(0, token[lo:])
    if current.strip():
        chunks.append(current.strip())
    return chunks
