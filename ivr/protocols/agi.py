"""AGI wire format: the ``agi_*`` environment block, command lines and result lines. Pure.

No I/O here: the FastAGI server and the process-AGI script read and write the bytes.

The environment block is ``agi_key: value`` lines ended by a blank line:

>>> req = parse_env(b"agi_network_script: inbound\\nagi_uniqueid: 1700000000.1\\n"
...                 b"agi_callerid: 13800138000\\nagi_arg_1: x\\n\\n")
>>> req.route, req.uniqueid, req.callerid, req.args
('inbound', '1700000000.1', '13800138000', ('x',))

Result lines:

>>> parse_result("200 result=1 (timeout) endpos=8000")
AgiResult(code=200, result='1', data='timeout', extra={'endpos': '8000'}, message='')
>>> parse_result("510 Invalid or unknown command").code
510
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ivr.errors import AgiHeaderError

_RESULT_RE = re.compile(r"^(?P<code>\d{3})[ -]?(?P<rest>.*)$")
_KV_RE = re.compile(r"(?P<key>\w+)=(?P<value>\S*)(?:\s+\((?P<data>[^)]*)\))?")
_UNSAFE_ARG = re.compile(r"[\r\n\x00]")


@dataclass(frozen=True, slots=True)
class AgiRequest:
    """What Asterisk tells about the channel when it opens a (Fast)AGI session."""

    env: Mapping[str, str]

    def get(self, key: str, default: str = "") -> str:
        return self.env.get(key, default)

    @property
    def route(self) -> str:
        """The FastAGI script name (``agi://host:port/<route>?query``), without the query."""
        return self.get("agi_network_script").split("?", 1)[0].strip("/")

    @property
    def uniqueid(self) -> str:
        return self.get("agi_uniqueid")

    @property
    def channel(self) -> str:
        return self.get("agi_channel")

    @property
    def callerid(self) -> str:
        cid = self.get("agi_callerid")
        return "" if cid == "unknown" else cid

    @property
    def extension(self) -> str:
        return self.get("agi_extension")

    @property
    def args(self) -> tuple[str, ...]:
        found = []
        i = 1
        while f"agi_arg_{i}" in self.env:
            found.append(self.env[f"agi_arg_{i}"])
            i += 1
        return tuple(found)


def parse_env(block: bytes, encoding: str = "utf-8") -> AgiRequest:
    """Parse the ``agi_*`` block (blank line optional). Lines without ``: `` are ignored."""
    env: dict[str, str] = {}
    for raw in block.decode(encoding, errors="replace").splitlines():
        key, sep, value = raw.partition(":")
        key = key.strip()
        if sep and key.startswith("agi_"):
            env[key] = value.strip()
    return AgiRequest(env=env)


class EnvBlock:
    """The ``agi_*`` block as it arrives, one line at a time, with a size limit (sans I/O).

    The adapter reads lines from its socket and feeds them here; :meth:`feed` says when the
    blank line that ends the block has come, and raises :class:`AgiHeaderError` when the
    peer closed first (an empty line: end of file) or sent more than ``limit`` bytes. The
    timeout is the reader's (``ivr/adapters/telephony/fastagi_server.py``).

    >>> block = EnvBlock(limit=4096)
    >>> block.feed(b"agi_uniqueid: 1.2\\n"), block.feed(b"\\n")
    (False, True)
    >>> parse_env(block.data).uniqueid
    '1.2'
    >>> EnvBlock(limit=4096).feed(b"")
    Traceback (most recent call last):
    ...
    ivr.errors.AgiHeaderError: connection closed before the end of the AGI environment
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()

    @property
    def received(self) -> int:
        """Bytes of the block received so far."""
        return len(self._buf)

    @property
    def data(self) -> bytes:
        """The block as received (whole once :meth:`feed` returned True)."""
        return bytes(self._buf)

    def feed(self, line: bytes) -> bool:
        """Add one line as read (``b""`` = the peer closed); True once the block is whole."""
        if not line:
            raise AgiHeaderError(
                "connection closed before the end of the AGI environment",
                received=len(self._buf),
            )
        self._buf += line
        if len(self._buf) > self.limit:
            raise AgiHeaderError("AGI environment too large", limit=self.limit)
        return line in (b"\n", b"\r\n")


@dataclass(frozen=True, slots=True)
class AgiResult:
    code: int
    result: str = ""
    data: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    message: str = ""

    @property
    def value(self) -> int:
        """``result=`` as an int (digit pressed as its code point, -1 error); 0 if empty."""
        try:
            return int(self.result)
        except ValueError:
            return 0


def parse_result(line: str) -> AgiResult:
    """Parse one AGI reply line. ``HANGUP`` gives code 0 with message ``HANGUP``.

    >>> parse_result("200 result=")
    AgiResult(code=200, result='', data=None, extra={}, message='')
    >>> parse_result("HANGUP").message
    'HANGUP'
    """
    line = line.rstrip("\r\n")
    if line.strip() == "HANGUP":
        return AgiResult(code=0, message="HANGUP")
    m = _RESULT_RE.match(line)
    if m is None:
        return AgiResult(code=0, message=line)
    code, rest = int(m.group("code")), m.group("rest")
    if code != 200:
        return AgiResult(code=code, message=rest)
    result, data, extra = "", None, {}
    for kv in _KV_RE.finditer(rest):
        if kv.group("key") == "result":
            result, data = kv.group("value"), kv.group("data")
        else:
            extra[kv.group("key")] = kv.group("value")
    return AgiResult(code=200, result=result, data=data, extra=extra)


def format_command(*parts: str) -> bytes:
    """Encode one AGI command. Arguments with spaces or quotes are double-quoted.

    >>> format_command("STREAM FILE", "/srv/p/zh/greeting", "")
    b'STREAM FILE /srv/p/zh/greeting ""\\n'
    >>> format_command("SET VARIABLE", "IVR_QUEUE", "repair")
    b'SET VARIABLE IVR_QUEUE repair\\n'
    """
    if not parts:
        raise ValueError("empty AGI command")
    out = [parts[0]]
    for arg in parts[1:]:
        if _UNSAFE_ARG.search(arg):
            raise ValueError(f"AGI argument contains a line break or NUL: {arg!r}")
        if arg == "" or any(c in arg for c in ' "\\'):
            arg = '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out.append(arg)
    return (" ".join(out) + "\n").encode("utf-8")
