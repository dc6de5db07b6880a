"""Builds the prompt audio Asterisk plays: prompts/catalog.yaml -> build/prompts/<lang>/<key>.wav.

Rendering uses espeak-ng (offline, from Debian); pydub (ffmpeg) converts to 8 kHz mono
16-bit PCM WAV. A studio recording at ``prompts/<lang>/<key>.<ext>`` wins over the TTS.
Never run during a call: ``ivr up`` builds what is missing or stale before Asterisk starts.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydub import AudioSegment

from ivr.errors import ConfigError

logger = logging.getLogger(__name__)

LANGUAGES = ("zh", "en")
ESPEAK_VOICES = {"zh": "cmn", "en": "en-us"}
ESPEAK_SPEED = 230  # words per minute: brisk, so the menu is not longer than a person's
STUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg")


@dataclass(frozen=True, slots=True)
class PromptText:
    key: str
    language: str
    text: str


def load_catalog(path: Path, hotline_name: str) -> list[PromptText]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the prompt catalog: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of prompt keys")
    prompts = []
    for key, texts in data.items():
        if not isinstance(texts, dict):
            raise ConfigError(f"{path}: prompt {key!r} must map languages to texts")
        for lang in LANGUAGES:
            if not isinstance(texts.get(lang), str) or not texts[lang].strip():
                raise ConfigError(f"{path}: prompt {key!r} has no {lang!r} text")
            prompts.append(PromptText(key, lang, texts[lang].format(hotline_name=hotline_name)))
    return prompts


def build(catalog: list[PromptText], studio_dir: Path, out_dir: Path) -> list[Path]:
    """Render what is missing or stale; returns the files written."""
    written = []
    for prompt in catalog:
        target = out_dir / prompt.language / f"{prompt.key}.wav"
        studio = _studio_file(studio_dir, prompt)
        source_id = _source_id(prompt, studio)
        stamp = target.with_suffix(".src")
        if target.exists() and stamp.exists() and stamp.read_text() == source_id:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if studio is not None:
            with studio.open("rb") as f:  # pydub leaves a path it opened unclosed
                audio = AudioSegment.from_file(f, format=studio.suffix[1:])
        else:
            audio = _speak(prompt)
        audio = audio.set_frame_rate(8000).set_channels(1).set_sample_width(2)
        audio.export(target, format="wav").close()  # export returns the file, still open
        stamp.write_text(source_id)
        written.append(target)
        logger.info("prompt built", extra={"prompt": str(target), "studio": studio is not None})
    return written


def _studio_file(studio_dir: Path, prompt: PromptText) -> Path | None:
    for suffix in STUDIO_SUFFIXES:
        candidate = studio_dir / prompt.language / f"{prompt.key}{suffix}"
        if candidate.exists():
            return candidate
    return None


def _source_id(prompt: PromptText, studio: Path | None) -> str:
    if studio is not None:
        return "studio:" + hashlib.sha256(studio.read_bytes()).hexdigest()
    voice = f"{ESPEAK_VOICES[prompt.language]}|{ESPEAK_SPEED}"
    return "tts:" + hashlib.sha256(f"{voice}|{prompt.text}".encode()).hexdigest()


def _speak(prompt: PromptText) -> AudioSegment:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "tts.wav"
        try:
            subprocess.run(
                [
                    "espeak-ng",
                    "-v",
                    ESPEAK_VOICES[prompt.language],
                    "-s",
                    str(ESPEAK_SPEED),
                    "-w",
                    str(wav),
                    prompt.text,
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
        except FileNotFoundError:
            raise ConfigError("espeak-ng is not installed: run scripts/provision") from None
        except subprocess.CalledProcessError as exc:
            raise ConfigError(
                f"espeak-ng failed for prompt {prompt.key}/{prompt.language}: "
                f"{exc.stderr.decode(errors='replace').strip()}"
            ) from None
        with wav.open("rb") as f:
            return AudioSegment.from_wav(f)
