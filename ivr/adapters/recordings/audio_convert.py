"""mp3 copies of recordings for download: pydub with Debian's ffmpeg, cached by content.

:func:`to_mp3` makes ``<conversion_dir>/<sha256>-<bitrate>.mp3`` once per distinct file and
returns it (a cached copy is returned as is). The original is only ever read.

The conversion runs in a child Python process (``python -m ivr.adapters.recordings.audio_convert SRC
OUT BITRATE``) whose ``TMPDIR`` is a fresh work folder inside the conversion folder, for two
reasons: pydub's ``export`` writes the whole wav and ffmpeg's output to two temporary files
in the system temp folder and leaves both behind when encoding fails (``delete=False``, no
cleanup), and a temp folder is process-wide. In the work folder, every byte of the
conversion lands on the conversion disk, and removing the folder afterwards removes every
partial file, whatever failed. The finished mp3 is hard-linked into place (same file system:
atomic, and never over an existing copy, which may be being served), so a reader never sees
half a file.

Failures: no space on the conversion disk (``ENOSPC``, from Python or from ffmpeg) is
:class:`ConversionNoSpace` (HTTP 507); a source that is not audio, :class:`NotConvertible`
(422); anything else (ffmpeg failing, too slow), :class:`ConversionFailed` (500). All three
leave nothing behind in the conversion folder.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

from ivr.errors import HotlineError

logger = logging.getLogger(__name__)

MP3_BITRATE: Final = "32k"  # 8 kHz stereo telephone audio: plenty
CONVERT_TIMEOUT_S: Final = 600.0
EXIT_NOT_AUDIO: Final = 3
EXIT_NO_SPACE: Final = 4
NO_SPACE_TEXT: Final = "No space left on device"


class ConversionFailed(HotlineError):
    """The mp3 could not be made (ffmpeg failed, timed out, or its folder is unusable)."""

    slug = "conversion-failed"
    status = 500
    public_message = "the mp3 could not be made; the wav download still works"


class ConversionNoSpace(ConversionFailed):
    """The disk filled up while making the mp3 (the half-made file is removed)."""

    slug = "insufficient-storage"
    status = 507
    public_message = "no space left to make the mp3; the wav download still works"


class NotConvertible(ConversionFailed):
    """ffmpeg cannot decode the recording."""

    slug = "recording-not-convertible"
    status = 422
    public_message = "this recording cannot be decoded, so no mp3 can be made of it"


def file_sha256(path: Path) -> str:
    with path.open("rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def cached_mp3(conversion_dir: Path, digest: str, bitrate: str = MP3_BITRATE) -> Path:
    return conversion_dir / f"{digest}-{bitrate}.mp3"


def _no_space(message: str) -> ConversionNoSpace:
    return ConversionNoSpace(f"no space left on the conversion disk: {message}")


def to_mp3(
    source: Path,
    conversion_dir: Path,
    *,
    digest: str,
    bitrate: str = MP3_BITRATE,
    timeout_s: float = CONVERT_TIMEOUT_S,
) -> Path:
    """The mp3 of ``source`` (whose SHA-256 is ``digest``), made now or found in the cache.

    Blocking (seconds for a long call): run it in a worker thread. Raises a
    :class:`ConversionFailed` subclass; nothing partial is left behind.
    """
    target = cached_mp3(conversion_dir, digest, bitrate)
    if target.is_file() and target.stat().st_size > 0:
        return target
    try:
        conversion_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".convert-", dir=conversion_dir))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _no_space(str(exc)) from None
        raise ConversionFailed(f"cannot use the conversion folder: {exc.strerror}") from None
    try:
        part = work / "out.mp3"
        try:
            done = subprocess.run(
                [sys.executable, "-W", "ignore::DeprecationWarning", "-m", __name__]
                + [str(source), str(part), bitrate],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout_s,
                env=os.environ | {"TMPDIR": str(work)},
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ConversionFailed(f"conversion took longer than {timeout_s:g} s") from None
        reason = done.stderr.decode(errors="replace").strip()[-300:]
        if done.returncode == EXIT_NO_SPACE:
            raise _no_space(reason)
        if done.returncode == EXIT_NOT_AUDIO:
            raise NotConvertible(f"the recording cannot be decoded: {reason}")
        if done.returncode != 0 or not part.is_file():
            raise ConversionFailed(f"mp3 conversion failed: {reason or done.returncode}")
        try:
            os.link(part, target)  # never replaces: a copy being served keeps its inode
        except FileExistsError:
            pass  # made meanwhile by another request: the same bytes
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise _no_space(str(exc)) from None
            raise ConversionFailed(f"cannot store the mp3: {exc.strerror}") from None
        logger.info("mp3 made", extra={"digest": digest[:16], "bytes": target.stat().st_size})
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _convert(source: str, out: str, bitrate: str) -> int:
    """The child's work: exit 0, EXIT_NOT_AUDIO, EXIT_NO_SPACE, or 1 (reason on stderr)."""
    from pydub import AudioSegment
    from pydub.exceptions import CouldntDecodeError, CouldntEncodeError

    try:
        audio = AudioSegment.from_file(source, format="wav")
    except CouldntDecodeError as exc:
        sys.stderr.write(str(exc).strip().splitlines()[0] if str(exc).strip() else "not audio")
        return EXIT_NOT_AUDIO
    except OSError as exc:
        sys.stderr.write(f"{exc.strerror}")
        return EXIT_NO_SPACE if exc.errno == errno.ENOSPC else 1
    try:
        audio.export(out, format="mp3", bitrate=bitrate)
    except CouldntEncodeError as exc:
        text = str(exc)
        sys.stderr.write(text[-300:])
        return EXIT_NO_SPACE if NO_SPACE_TEXT in text else 1
    except OSError as exc:
        sys.stderr.write(f"{exc.strerror}")
        return EXIT_NO_SPACE if exc.errno == errno.ENOSPC else 1
    return 0


if __name__ == "__main__":
    sys.exit(_convert(*sys.argv[1:4]))
