"""X length rules: weighted counting (twitter-text) and splitting into numbered threads."""

from __future__ import annotations

import pytest

from notifier.channels.x_text import MAX_WEIGHTED, compose, footer, part_pattern, weighted_length

URL = "https://status.example.com/incidents/inc42.html"
MARKER = "#INC42·3"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 280, 280),
        ("a" * 281, 281),
        ("😀", 2),
        ("👩‍👩‍👧‍👦", 2),  # one emoji sequence counts 2, not per code point
        ("日本語", 6),
        ("é", 1),
        ("https://example.com/" + "x" * 200, 23),
        ("see https://status.example.com/1 and https://www.example.org/2", 4 + 23 + 5 + 23),
        ("see a.example/1", 15),  # not a real TLD, so not a link: counted per character
    ],
)
def test_weighted_length_follows_x_rules(text: str, expected: int) -> None:
    assert weighted_length(text) == expected


def _fill(target: int) -> str:
    """A body that makes the single post exactly ``target`` weighted characters long."""
    tail = weighted_length("\n\n" + footer(URL, MARKER, 1, 1))
    return "a" * (target - tail)


@pytest.mark.parametrize(
    ("body", "parts"),
    [
        (_fill(280), 1),  # exactly 280: one post
        (_fill(281), 2),  # one more: a thread
        ("😀" * 120, 1),  # 240 + footer fits
        ("😀" * 140, 2),  # 280 + footer does not
        ("障害" * 60, 1),  # 240 weighted
        ("障害" * 70, 2),  # 280 weighted
        (" ".join(f"https://mirror{i}.example.org/a/very/long/path/segment" for i in range(8)), 1),
        (" ".join(f"https://mirror{i}.example.org/a/very/long/path/segment" for i in range(12)), 2),
        ("word " * 300, 6),  # 1,500 characters at ~270 per part
    ],
)
def test_compose_splits_only_what_does_not_fit(body: str, parts: int) -> None:
    out = compose(body, URL, MARKER)
    assert len(out) == parts
    for i, part in enumerate(out, start=1):
        assert weighted_length(part) <= MAX_WEIGHTED
        assert MARKER in part
        assert part_pattern(MARKER, i, len(out)).search(part)
    assert URL in out[0]
    assert all(URL not in p for p in out[1:])


def test_exactly_280_is_used_to_the_last_character() -> None:
    (single,) = compose(_fill(280), URL, MARKER)
    assert weighted_length(single) == 280


def test_thread_keeps_every_word_in_order() -> None:
    words = [f"w{i}" for i in range(400)]
    parts = compose(" ".join(words), URL, MARKER)
    seen = []
    for part in parts:
        body = part.rsplit("\n\n", 1)[0]
        seen.extend(body.split())
    assert seen == words


def test_a_token_longer_than_a_post_is_cut() -> None:
    parts = compose("x" * 700, "", MARKER)
    assert len(parts) == 3
    assert "".join(p.rsplit("\n\n", 1)[0] for p in parts) == "x" * 700


@pytest.mark.parametrize(
    ("text", "index", "total", "found"),
    [
        ("Fixed. #INC42·3", 1, 1, True),
        ("Fixed. #INC42·30", 1, 1, False),  # another update of the same incident
        ("Fixed. #INC42·3 1/2", 1, 1, False),  # a part of a thread is not the single post
        ("Fixed. #INC42·3 1/2", 1, 2, True),
        ("Fixed. #INC42·3 2/2", 1, 2, False),
        ("Fixed. #INC42·3 1/20", 1, 2, False),
        ("https://t.co/abc #INC42·3", 1, 1, True),  # X rewrites links, not the marker
    ],
)
def test_part_pattern_is_exact(text: str, index: int, total: int, found: bool) -> None:
    assert bool(part_pattern(MARKER, index, total).search(text)) is found


def test_light_text_rules_match_twitter_texts_tables() -> None:
    """The fast path of ``weighted_length`` assumes: below U+1100 each character weighs 1, and the only
    emoji there are (c) and (r). Both come from twitter-text's own data; an upgrade that changes them fails here."""
    from twitter_text.config import config
    from twitter_text.extract_emojis import extract_emojis_with_indices

    rules = config["defaults"]
    first = rules["ranges"][0]
    assert first["start"] == 0 and first["end"] >= 0x10FF and first["weight"] == rules["scale"]
    assert [c for c in range(0x1100) if extract_emojis_with_indices(chr(c))] == [0xA9, 0xAE]


def test_weighted_length_fast_path_equals_parse_tweet() -> None:
    import random

    from twitter_text import parse_tweet

    rng = random.Random(14)
    pieces = ["mail is slow ", "https://status.example.com/incidents/inc42.html", " #INC42·3 1/2", "\r\n", "\n\n",
              "e\u0301", "Straße ", "Привет ", "ελληνικά ", "a.example/1 ", "www.example.org ", "©", "😀", "日本",
              "x" * 40, " see http://a.b/c?d=e#f ", "\t", "1/3 "]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 12)))
        text += "".join(chr(rng.randrange(0x20, 0x1100)) for _ in range(rng.randrange(0, 4)))
        weighted_length.cache_clear()
        assert weighted_length(text) == parse_tweet(text).weightedLength, repr(text)
