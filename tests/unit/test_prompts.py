"""Prompt catalog and build: espeak-ng + pydub (ffmpeg) into 8 kHz mono 16-bit WAVs."""

from __future__ import annotations

import math
import struct
import subprocess
import wave
from pathlib import Path

import pytest

from ivr.adapters.telephony.prompts import PromptText, build, load_catalog
from ivr.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent.parent

CATALOG = """\
greeting:
  zh: "您好，{hotline_name}。"
  en: "Hello, this is the {hotline_name}."
"""


def write_catalog(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def wav_format(path: Path) -> tuple[int, int, int, float]:
    """(channels, sample width, rate, seconds) of a WAV file."""
    with wave.open(str(path), "rb") as w:
        return (
            w.getnchannels(),
            w.getsampwidth(),
            w.getframerate(),
            w.getnframes() / w.getframerate(),
        )


def write_sine(path: Path, seconds: float, rate: int = 44100, channels: int = 2) -> None:
    """A studio-style recording: 440 Hz sine, 16-bit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = bytearray()
    for i in range(int(seconds * rate)):
        sample = int(12000 * math.sin(2 * math.pi * 440 * i / rate))
        frames += struct.pack("<h", sample) * channels
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))


# --- load_catalog ---------------------------------------------------------------------------
def test_given_catalog_when_loaded_then_hotline_name_substituted(tmp_path):
    path = write_catalog(tmp_path, CATALOG)

    prompts = load_catalog(path, "燃气热线")

    assert prompts == [
        PromptText("greeting", "zh", "您好，燃气热线。"),
        PromptText("greeting", "en", "Hello, this is the 燃气热线."),
    ]


def test_given_repository_catalog_when_loaded_then_every_prompt_in_both_languages():
    prompts = load_catalog(REPO / "prompts" / "catalog.yaml", "测试热线")

    keys = {p.key for p in prompts}
    assert {"greeting", "apology"} <= keys
    assert {(p.key, p.language) for p in prompts} == {
        (k, lang) for k in keys for lang in "zh en".split()
    }
    assert all("{" not in p.text for p in prompts)
    assert any("测试热线" in p.text for p in prompts if p.key == "greeting")


@pytest.mark.parametrize(
    "entry",
    [
        'greeting:\n  zh: "您好"\n',
        'greeting:\n  zh: "您好"\n  en: "   "\n',
        'greeting:\n  zh: "您好"\n  en: 42\n',
    ],
)
def test_given_prompt_without_english_when_loaded_then_error_names_prompt_and_language(
    tmp_path, entry
):
    path = write_catalog(tmp_path, entry)

    with pytest.raises(ConfigError) as info:
        load_catalog(path, "x")

    assert info.value.message == f"{path}: prompt 'greeting' has no 'en' text"


def test_given_prompt_not_a_mapping_when_loaded_then_error_names_prompt(tmp_path):
    path = write_catalog(tmp_path, 'greeting: "hello"\n')

    with pytest.raises(ConfigError, match="prompt 'greeting' must map languages"):
        load_catalog(path, "x")


@pytest.mark.parametrize("text", ["- a\n- b\n", "greeting: [\n"])
def test_given_catalog_not_a_mapping_or_broken_when_loaded_then_error_names_file(tmp_path, text):
    path = write_catalog(tmp_path, text)

    with pytest.raises(ConfigError, match=str(path)):
        load_catalog(path, "x")


def test_given_missing_catalog_when_loaded_then_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the prompt catalog"):
        load_catalog(tmp_path / "nope.yaml", "x")


# --- build ------------------------------------------------------------------------------------
@pytest.fixture
def catalog(tmp_path: Path) -> list[PromptText]:
    return load_catalog(write_catalog(tmp_path, CATALOG), "燃气热线")


def test_given_catalog_when_built_then_8khz_mono_16bit_wavs(tmp_path, catalog):
    out = tmp_path / "build"

    written = build(catalog, tmp_path / "studio", out)

    assert written == [out / "zh" / "greeting.wav", out / "en" / "greeting.wav"]
    for path in written:
        channels, width, rate, seconds = wav_format(path)
        assert (channels, width, rate) == (1, 2, 8000)
        assert 0.5 < seconds < 10


def test_given_built_prompts_when_built_again_then_nothing_written(tmp_path, catalog):
    out = tmp_path / "build"
    first = build(catalog, tmp_path / "studio", out)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in first}

    assert build(catalog, tmp_path / "studio", out) == []
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in first} == before


def test_given_text_changed_when_built_again_then_only_that_prompt_rerendered(tmp_path, catalog):
    out = tmp_path / "build"
    build(catalog, tmp_path / "studio", out)
    old_en = (out / "en" / "greeting.wav").read_bytes()
    changed = [
        p if p.language == "zh" else PromptText(p.key, p.language, "Goodbye.") for p in catalog
    ]

    written = build(changed, tmp_path / "studio", out)

    assert written == [out / "en" / "greeting.wav"]
    assert (out / "en" / "greeting.wav").read_bytes() != old_en


def test_given_output_deleted_when_built_again_then_rerendered(tmp_path, catalog):
    out = tmp_path / "build"
    build(catalog, tmp_path / "studio", out)
    (out / "zh" / "greeting.wav").unlink()

    assert build(catalog, tmp_path / "studio", out) == [out / "zh" / "greeting.wav"]


def test_given_studio_recording_when_built_then_it_replaces_tts_and_keeps_duration(
    tmp_path, catalog
):
    studio, out = tmp_path / "studio", tmp_path / "build"
    build(catalog, studio, out)
    tts = (out / "zh" / "greeting.wav").read_bytes()
    write_sine(studio / "zh" / "greeting.wav", seconds=1.25)

    written = build(catalog, studio, out)

    assert written == [out / "zh" / "greeting.wav"]
    channels, width, rate, seconds = wav_format(out / "zh" / "greeting.wav")
    assert (channels, width, rate) == (1, 2, 8000)
    assert seconds == pytest.approx(1.25, abs=0.01)
    assert (out / "zh" / "greeting.wav").read_bytes() != tts
    assert build(catalog, studio, out) == []  # the studio file is stamped too


def test_given_studio_recording_replaced_when_built_again_then_rerendered(tmp_path, catalog):
    studio, out = tmp_path / "studio", tmp_path / "build"
    write_sine(studio / "en" / "greeting.wav", seconds=0.5, rate=16000, channels=1)
    build(catalog, studio, out)
    write_sine(studio / "en" / "greeting.wav", seconds=0.75, rate=16000, channels=1)

    assert build(catalog, studio, out) == [out / "en" / "greeting.wav"]
    assert wav_format(out / "en" / "greeting.wav")[3] == pytest.approx(0.75, abs=0.01)


def test_given_studio_recording_in_flac_when_built_then_converted(tmp_path, catalog):
    studio, out = tmp_path / "studio", tmp_path / "build"
    write_sine(tmp_path / "take.wav", seconds=0.6, rate=48000)
    (studio / "en").mkdir(parents=True)
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-i",
            tmp_path / "take.wav",
            studio / "en" / "greeting.flac",
        ],
        check=True,
        timeout=30,
    )

    build(catalog, studio, out)

    channels, width, rate, seconds = wav_format(out / "en" / "greeting.wav")
    assert (channels, width, rate) == (1, 2, 8000)
    assert seconds == pytest.approx(0.6, abs=0.01)
