"""Recordings, catalog rows and users for the QA tests (API, page, benchmark-like checks).

Audio is real: espeak-ng speech and sox tones, as 8 kHz 16-bit stereo wavs like the
recorder's (caller left, agent right).

    call_wav(path, seconds, text=None)   a stereo wav: speech (or a 300 Hz tone) on the left,
                                         a 1 kHz tone on the right, ``seconds`` long
    catalogue(db, file_name=..., **fields) -> Recording
                                         a catalog row with sensible defaults
    add_transcript(db, recording, words) -> Transcript
    QA_STAFF                             qa1 (qa), qa2 (qa), sup1 (supervisor), admin1 (admin),
                                         for tests.web_support's add_staff
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ivr.adapters.sql.db import Recording, RecordingStatus, Role, Transcript

QA_STAFF = (("qa1", Role.qa), ("qa2", Role.qa), ("sup1", Role.supervisor), ("admin1", Role.admin))
RATE = 8000


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, check=False, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {done.stderr.decode(errors='replace')}")


def call_wav(path: Path, seconds: float, text: str | None = None) -> Path:
    """A stereo 8 kHz 16-bit wav of exactly ``seconds``: the caller (speech, or a tone) on the
    left, the agent's side (a 1 kHz tone) on the right."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        left = Path(tmp) / "left.wav"
        right = Path(tmp) / "right.wav"
        if text is None:
            _run("sox", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(left),
                 "synth", f"{seconds}", "sine", "300", "vol", "0.5")  # fmt: skip
        else:
            spoken = Path(tmp) / "spoken.wav"
            _run("espeak-ng", "-v", "en", "-s", "140", "-w", str(spoken), text)
            _run("sox", str(spoken), "-r", str(RATE), "-c", "1", "-b", "16", str(left),
                 "pad", "0", f"{seconds}", "trim", "0", f"{seconds}")  # fmt: skip
        _run("sox", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(right),
             "synth", f"{seconds}", "sine", "1000", "vol", "0.3")  # fmt: skip
        _run("sox", "-M", str(left), str(right), "-b", "16", str(path))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def catalogue(
    db: Session,
    *,
    linkedid: str,
    caller: str = "13800138000",
    started_at: datetime | None = None,
    file_name: str | None = None,
    recordings_dir: Path | None = None,
    **fields: Any,
) -> Recording:
    """A catalog row; size and checksum from the file when it exists."""
    size = digest = None
    if file_name and recordings_dir is not None and (recordings_dir / file_name).is_file():
        data = (recordings_dir / file_name).read_bytes()
        size, digest = len(data), hashlib.sha256(data).hexdigest()
    row = Recording(
        linkedid=linkedid,
        uniqueid=f"{linkedid}.1",
        started_at=started_at or datetime(2026, 5, 1, 2, 0, tzinfo=UTC),
        did="95158",
        caller=caller,
        caller_reversed="".join(ch for ch in caller if ch.isdigit())[::-1],  # as the recorder
        file_name=file_name,
        size_bytes=size,
        sha256=digest,
        **({"status": RecordingStatus.ok} | fields),
    )
    db.add(row)
    db.flush()
    return row


def add_transcript(
    db: Session, recording: Recording, words: list[tuple[str, float, float]]
) -> Transcript:
    transcript = Transcript(
        source_key=f"recording:{recording.id}",
        recording_id=recording.id,
        language="en",
        model="test-words",
        text=" ".join(word for word, _, _ in words),
        words=[{"word": w, "start": s, "end": e, "conf": 0.9} for w, s, e in words],
        confidence=0.9,
        audio_s=words[-1][2] if words else 0.0,
        decode_s=0.1,
        danger_words=[],
    )
    db.add(transcript)
    db.flush()
    recording.transcript_id = transcript.id
    return transcript
