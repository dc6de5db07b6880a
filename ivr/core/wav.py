"""Where a WAV file's PCM lies, also when its header was never finished. Pure (bytes in).

Asterisk writes a WAV header with the data size at the start and fixes the sizes when it
closes the file. A leg whose Asterisk died mid-call keeps a size of 0 (or one too big):
:func:`parse_wav_header` then takes every whole frame from the ``data`` chunk to the end of
the file and says so (``header_ok`` False). The audio itself is read in slices by the caller,
so an hour-long leg never has to be in memory at once. Anything that is not a PCM RIFF/WAVE
file raises :class:`NotWav` with the reason.

>>> import struct
>>> fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
>>> head = b"RIFF" + struct.pack("<I", 0) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
>>> head += b"data" + struct.pack("<I", 0)
>>> layout = parse_wav_header(head, file_size=len(head) + 16001)
>>> layout.data_offset, layout.frames, layout.seconds, layout.header_ok
(44, 8000, 1.0, False)
>>> parse_wav_header(b"not audio at all", 16)
Traceback (most recent call last):
...
ivr.core.wav.NotWav: not a RIFF/WAVE file
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

HEADER_READ: Final = 64 * 1024  # read this much of a file to find its data chunk
_PCM: Final = 1
_EXTENSIBLE: Final = 0xFFFE
_PCM_SUBFORMAT: Final = b"\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


class NotWav(ValueError):
    """The bytes are not PCM WAV audio; the message says why."""


@dataclass(frozen=True, slots=True)
class WavLayout:
    channels: int
    sample_rate: int
    sample_width: int  # bytes per sample
    data_offset: int  # where the samples start in the file
    data_size: int  # bytes of whole frames from there
    header_ok: bool  # the data chunk's size was right (False: a file never closed)

    @property
    def frame_size(self) -> int:
        return self.channels * self.sample_width

    @property
    def frames(self) -> int:
        return self.data_size // self.frame_size

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def parse_wav_header(head: bytes, file_size: int) -> WavLayout:
    """The layout of a WAV file from its first bytes (:data:`HEADER_READ` is plenty) and
    its size on disk."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise NotWav("not a RIFF/WAVE file")
    pos = 12
    fmt: tuple[int, int, int] | None = None
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt ":
            fmt = _format(head[body : body + size])
        elif chunk == b"data":
            if fmt is None:
                raise NotWav("data before the fmt chunk")
            channels, rate, width = fmt
            available = max(0, file_size - body)
            header_ok = 0 < size <= available
            data = size if header_ok else available
            whole = data - data % (channels * width)
            return WavLayout(channels, rate, width, body, whole, header_ok and whole == data)
        pos = body + size + (size & 1)  # chunks are padded to an even size
    raise NotWav("no data chunk" if fmt is not None else "no fmt chunk")


def _format(body: bytes) -> tuple[int, int, int]:
    if len(body) < 16:
        raise NotWav("fmt chunk too short")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
    if tag == _EXTENSIBLE and len(body) >= 40 and body[24:40] == _PCM_SUBFORMAT:
        tag = _PCM
    if tag != _PCM:
        raise NotWav(f"not PCM (format {tag:#x})")
    if not 1 <= channels <= 8 or not 1000 <= rate <= 384_000 or bits not in (8, 16, 24, 32):
        raise NotWav(f"unusable format: {channels} channel(s), {rate} Hz, {bits} bits")
    return channels, rate, bits // 8
