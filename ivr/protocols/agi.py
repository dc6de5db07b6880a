"""AGI wire format: the ``agi_*`` environment block, command lines and result lines. Pure.

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

import asyncio
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


async def read_env_block(reader: asyncio.StreamReader, *, limit: int, timeout: float) -> bytes:
    """Read the environment block up to its blank line, with a size limit and a timeout.

    Fixes panoramisk defect 3 (its loop spins forever on a connection that closes early).
    Raises AgiHeaderError when the peer is too slow, sends too much, or closes first.
    """
    buf = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while True:
                line = await reader.readline()
                if not line:
                    raise AgiHeaderError(
                        "connection closed before the end of the AGI environment",
                        received=len(buf),
                    )
                buf += line
                if len(buf) > limit:
                    raise AgiHeaderError("AGI environment too large", limit=limit)
                if line in (b"\n", b"\r\n"):
                    return bytes(buf)
    except TimeoutError:
        raise AgiHeaderError(
            f"AGI environment not complete after {timeout:g} s", received=len(buf)
        ) from None
    except ValueError:  # StreamReader's own line limit
        raise AgiHeaderError("AGI environment line too long", limit=limit) from None


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
