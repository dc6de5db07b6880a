"""mp3 conversion with pydub and the real ffmpeg: concurrent requests for one recording."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ivr.adapters.recordings.audio_convert import cached_mp3, file_sha256, to_mp3
from tests.qa_support import call_wav


def test_given_four_conversions_of_one_file_at_once_then_one_cached_mp3_and_no_leftovers(
    tmp_path: Path,
):
    wav = call_wav(tmp_path / "call.wav", 20.0)
    digest = file_sha256(wav)
    cache = tmp_path / "cache"

    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda _: to_mp3(wav, cache, digest=digest), range(4)))

    assert made == [cached_mp3(cache, digest)] * 4
    assert [p.name for p in cache.iterdir()] == [made[0].name]  # no work folders left
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
         str(made[0])],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    assert abs(float(probe.stdout) - 20.0) < 0.2
    assert file_sha256(wav) == digest
