"""Asterisk Manager Interface (AMI) framing: bytes in, :class:`AmiMessage` out, and back.

Pure code, no sockets. Avoids panoramisk 1.4's framing defect by design: bytes are buffered
and each *whole* frame is decoded as UTF-8, so a multi-byte character (a Chinese
``CallerIDName``) split across two TCP reads arrives intact.

A session starts with a one-line banner and no blank line after it; every later message is
``Key: value`` lines ended by an empty line::

    Asterisk Call Manager/9.0.0\\r\\n
    Response: Success\\r\\n
    ActionID: 1\\r\\n
    Message: Authentication accepted\\r\\n
    \\r\\n
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ivr.errors import AmiFrameError

DEFAULT_MAX_FRAME_BYTES = 1024 * 1024
RESERVED_KEYS = frozenset({"action", "actionid"})  # set by encode_action itself

_FRAME_END = re.compile(rb"\r?\n\r?\n")
_FRAME_END_MAX_LEN = 4  # len(b"\r\n\r\n"): a search may resume this many bytes minus one back


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI response or event: its ``(key, value)`` fields in arrival order.

    Keys are looked up case-insensitively; a key may repeat (``ChanVariable``, ``Variable``).

    >>> m = AmiMessage((("Event", "VarSet"), ("ChanVariable", "a=1"), ("chanvariable", "b=2")))
    >>> m.event, m.response, m.action_id
    ('VarSet', None, None)
    >>> m.get("CHANVARIABLE"), m.get_all("ChanVariable"), m.get("Missing", "-")
    ('a=1', ['a=1', 'b=2'], '-')
    >>> m.to_dict()
    {'Event': 'VarSet', 'ChanVariable': 'a=1'}
    """

    fields: tuple[tuple[str, str], ...]

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value of ``key`` (any case), else ``default``."""
        wanted = key.lower()
        return next((value for name, value in self.fields if name.lower() == wanted), default)

    def get_all(self, key: str) -> list[str]:
        """Every value of ``key`` (any case), in arrival order."""
        wanted = key.lower()
        return [value for name, value in self.fields if name.lower() == wanted]

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def to_dict(self) -> dict[str, str]:
        """The fields as a dict; for a repeated key (matched case-insensitively) the first wins."""
        result: dict[str, str] = {}
        seen: set[str] = set()
        for name, value in self.fields:
            if name.lower() not in seen:
                seen.add(name.lower())
                result[name] = value
        return result


class AmiFramer:
    """Split an AMI byte stream into messages.

    Feed it whatever the socket returns; it keeps partial frames until their end arrives.

    >>> framer = AmiFramer()
    >>> framer.feed(b"Asterisk Call Manager/9.0.0\\r\\nResponse: Succ")
    []
    >>> framer.banner
    'Asterisk Call Manager/9.0.0'
    >>> [m.to_dict() for m in framer.feed(b"ess\\r\\nActionID: 7\\r\\n\\r\\n")]
    [{'Response': 'Success', 'ActionID': '7'}]

    The first line of the stream is the banner when it has no colon. Frames end with
    ``\\r\\n\\r\\n`` or a bare ``\\n\\n``. A line without a colon is skipped and counted in
    :attr:`malformed_lines`. When no complete frame is found and more than ``max_frame_bytes``
    wait without an end, :class:`~ivr.errors.AmiFrameError` is raised and the buffer emptied
    (complete frames found in the same call are returned first; the error comes on the next).
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.banner: str | None = None
        self.malformed_lines = 0
        self._max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._scan_from = 0  # bytes before this offset hold no frame end
        self._awaiting_banner = True

    def feed(self, data: bytes) -> list[AmiMessage]:
        """Add ``data`` and return the messages completed by it, in arrival order."""
        self._buffer += data
        messages = self._take_messages() if self._banner_settled() else []
        if not messages and len(self._buffer) > self._max_frame_bytes:
            size = len(self._buffer)
            self._buffer.clear()
            self._scan_from = 0
            raise AmiFrameError(
                f"AMI frame exceeds {self._max_frame_bytes} bytes without an end",
                size=size,
                limit=self._max_frame_bytes,
            )
        return messages

    def _banner_settled(self) -> bool:
        """Consume the banner line if the stream starts with one; False while undecided."""
        if not self._awaiting_banner:
            return True
        end = self._buffer.find(b"\n")
        if end < 0:
            return False
        line = bytes(self._buffer[:end])
        if line.strip() and b":" not in line:
            self.banner = line.decode("utf-8", errors="replace").strip()
            del self._buffer[: end + 1]
        self._awaiting_banner = False
        return True

    def _take_messages(self) -> list[AmiMessage]:
        messages = []
        while (match := _FRAME_END.search(self._buffer, self._scan_from)) is not None:
            frame = bytes(self._buffer[: match.start()])
            del self._buffer[: match.end()]
            self._scan_from = 0
            message = self._parse(frame.decode("utf-8", errors="replace"))
            if message.fields:
                messages.append(message)
        self._scan_from = max(0, len(self._buffer) - (_FRAME_END_MAX_LEN - 1))
        return messages

    def _parse(self, text: str) -> AmiMessage:
        fields = []
        for line in text.split("\n"):
            if not line.strip():
                continue
            key, colon, value = line.partition(":")
            if not colon or not key.strip():
                self.malformed_lines += 1
                continue
            fields.append((key.strip(), value.strip()))
        return AmiMessage(tuple(fields))


def encode_action(action: str, action_id: str, fields: Mapping[str, str | Sequence[str]]) -> bytes:
    """Encode one action; a sequence value gives one line per item (``Variable``).

    >>> encode_action("Setvar", "a1", {"Variable": ["x=1", "y=2"]})
    b'Action: Setvar\\r\\nActionID: a1\\r\\nVariable: x=1\\r\\nVariable: y=2\\r\\n\\r\\n'

    Raises ValueError for CR or LF anywhere (header injection), a key that is empty or holds
    a colon, and ``Action``/``ActionID`` in ``fields`` (they are the arguments).
    """
    lines = [_line("Action", action), _line("ActionID", action_id)]
    for key, value in fields.items():
        if key.strip().lower() in RESERVED_KEYS:
            raise ValueError(f"AMI field {key!r} is set by encode_action, not by fields")
        values = [value] if isinstance(value, str) else list(value)
        lines.extend(_line(key, item) for item in values)
    return "".join(lines).encode("utf-8") + b"\r\n"


def _line(key: str, value: str) -> str:
    if not key.strip() or ":" in key or _has_line_break(key):
        raise ValueError(f"invalid AMI key {key!r}")
    if _has_line_break(value):
        raise ValueError(f"AMI value of {key!r} contains a line break")
    return f"{key}: {value}\r\n"


def _has_line_break(text: str) -> bool:
    return "\r" in text or "\n" in text
