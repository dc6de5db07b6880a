"""HTTP byte ranges: parsing, bounds, If-Range and what counts as a replay (pure)."""

from __future__ import annotations

import pytest

from ivr.core.http_range import (
    ByteRange,
    MultipleRangesRefused,
    RangeNotSatisfiable,
    if_range_allows,
    parse_range,
    starts_a_replay,
)

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=0-", ByteRange(0, 999)),
        ("bytes=500-", ByteRange(500, 999)),
        ("bytes=999-999", ByteRange(999, 999)),
        ("bytes=900-5000", ByteRange(900, 999)),  # the end is clamped
        ("bytes=-100", ByteRange(900, 999)),  # the last 100 bytes
        ("bytes=-5000", ByteRange(0, 999)),  # a suffix longer than the file: all of it
        ("Bytes = 10-19", ByteRange(10, 19)),  # unit case and spaces
        ("bytes= 10-19 ", ByteRange(10, 19)),
    ],
)
def test_given_a_satisfiable_range_then_parsed(header, expected):
    found = parse_range(header, SIZE)
    assert found == expected
    assert found is not None and found.length == expected.end - expected.start + 1


def test_content_range_names_the_bytes_and_the_size():
    assert ByteRange(10, 19).content_range(SIZE) == "bytes 10-19/1000"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes",
        "items=0-10",
        "bytes=",
        "bytes=-",
        "bytes=abc",
        "bytes=1-2-3",
        "bytes=0x10-",
        "bytes=../../etc/passwd",
        "bytes=/etc/passwd",
        "bytes=5-3",  # last before first: invalid, ignored
        "bytes=0-1," + "2" * 300,  # absurdly long
    ],
)
def test_given_a_header_to_ignore_then_whole_file(header):
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=1000-", SIZE),
        ("bytes=1000-2000", SIZE),
        ("bytes=123456789012345678901234567890-", SIZE),
        ("bytes=-0", SIZE),
        ("bytes=0-", 0),
        ("bytes=-10", 0),
    ],
)
def test_given_a_range_out_of_bounds_then_416_with_the_size(header, size):
    with pytest.raises(RangeNotSatisfiable) as caught:
        parse_range(header, size)
    assert caught.value.status == 416
    assert caught.value.content_range == f"bytes */{size}"
    assert caught.value.details == {"size": size}


def test_given_several_ranges_then_refused_clearly():
    with pytest.raises(MultipleRangesRefused) as caught:
        parse_range("bytes=0-1,5-6", SIZE)
    assert caught.value.status == 416
    assert caught.value.slug == "multiple-ranges-unsupported"
    assert caught.value.content_range == "bytes */1000"


def test_negative_size_is_a_programming_error():
    with pytest.raises(ValueError):
        parse_range("bytes=0-", -1)


@pytest.mark.parametrize(
    ("if_range", "allowed"),
    [
        (None, True),
        ('"abc"', True),
        ('"abd"', False),
        ('W/"abc"', False),  # weak tags never match for ranges
        ("Wed, 01 May 2026 02:00:00 GMT", True),
        ("Thu, 02 May 2026 02:00:00 GMT", False),
    ],
)
def test_if_range_honours_the_range_only_for_this_version(if_range, allowed):
    assert if_range_allows(if_range, '"abc"', "Wed, 01 May 2026 02:00:00 GMT") is allowed


def test_whole_file_and_byte_zero_start_a_replay_later_bytes_are_seeks():
    assert starts_a_replay(None)
    assert starts_a_replay(ByteRange(0, 0))
    assert starts_a_replay(ByteRange(0, 999))
    assert not starts_a_replay(ByteRange(1, 999))
