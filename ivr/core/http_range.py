"""HTTP byte ranges (RFC 9110 section 14) for serving recordings: parse, check, describe. Pure.

One range per request. A header this server does not understand (another unit, bad syntax,
a last byte before the first) is ignored and the whole file is sent, as RFC 9110 14.2 allows.
A range that starts past the end (or a zero-length suffix, or any range of an empty file) is
not satisfiable: 416 with ``Content-Range: bytes */<size>``. Several ranges in one header are
refused the same way (browsers never ask for them; a multipart answer is not worth having).

>>> parse_range("bytes=0-99", 1000)
ByteRange(start=0, end=99)
>>> parse_range("bytes=-100", 1000), parse_range("bytes=900-5000", 1000)
(ByteRange(start=900, end=999), ByteRange(start=900, end=999))
>>> parse_range("bytes=1000-", 1000)
Traceback (most recent call last):
...
ivr.core.http_range.RangeNotSatisfiable: range starts past the end of the file
>>> parse_range("lines=1-2", 1000) is None
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from ivr.errors import HotlineError

MAX_HEADER: Final = 256  # a longer Range header is not one a browser sends: ignored
_SPEC = re.compile(r"^(\d*)-(\d*)$")


class RangeNotSatisfiable(HotlineError):
    """An HTTP Range that the file cannot serve (HTTP 416 with ``Content-Range: bytes */size``)."""

    slug = "range-not-satisfiable"
    status = 416

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message, size=size)
        self.size = size

    @property
    def content_range(self) -> str:
        return f"bytes */{self.size}"


class MultipleRangesRefused(RangeNotSatisfiable):
    """Several ranges in one request: one range per request is served."""

    slug = "multiple-ranges-unsupported"


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in the header

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        """The ``Content-Range`` value of this range in a file of ``size`` bytes.

        >>> ByteRange(0, 99).content_range(1000)
        'bytes 0-99/1000'
        """
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range ``header`` asks for within a file of ``size`` bytes.

    None: send the whole file (no header, or one to ignore). Raises
    :class:`RangeNotSatisfiable` (or :class:`MultipleRangesRefused`).
    """
    if size < 0:
        raise ValueError("size must be >= 0")
    if header is None or len(header) > MAX_HEADER:
        return None
    unit, sep, ranges = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    specs = [spec.strip() for spec in ranges.split(",")]
    matches = [_SPEC.match(spec) for spec in specs]
    if not specs or any(m is None or m.group(0) == "-" for m in matches):
        return None  # malformed: ignored
    parsed: list[tuple[str, str]] = [(m.group(1), m.group(2)) for m in matches if m is not None]
    if any(first and last and int(last) < int(first) for first, last in parsed):
        return None  # a last byte before the first: invalid, ignored
    if len(parsed) > 1:
        raise MultipleRangesRefused("one range per request, please", size)
    first, last = parsed[0]
    if not first:  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable("an empty range", size)
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    if start >= size:
        raise RangeNotSatisfiable("range starts past the end of the file", size)
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start, end)


def if_range_allows(if_range: str | None, etag: str, last_modified: str) -> bool:
    """True when a Range may be honoured: no ``If-Range``, or it names this version of the
    file (a strong ETag, or exactly its Last-Modified date). Otherwise send it all.

    >>> if_range_allows(None, '"a"', "x"), if_range_allows('"a"', '"a"', "x")
    (True, True)
    >>> if_range_allows('W/"a"', '"a"', "x"), if_range_allows('"b"', '"a"', "x")
    (False, False)
    """
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return value == etag and not etag.startswith("W/")
    return value == last_modified


def starts_a_replay(byte_range: ByteRange | None) -> bool:
    """A request for the whole file or from its first byte starts a replay (the audit log
    counts those); a range from further on is a seek within one.

    >>> starts_a_replay(None), starts_a_replay(ByteRange(0, 99)), starts_a_replay(ByteRange(44, 99))
    (True, True, False)
    """
    return byte_range is None or byte_range.start == 0
