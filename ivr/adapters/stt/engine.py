"""Offline speech-to-text with vosk: one model per process, a recognizer per decode.

::

    engine = SttEngine.load(settings.stt.model_path, settings.stt.language)  # once per process
    result = engine.transcribe(path, channel=0, max_audio_s=settings.stt.max_audio_s)

How a file is decoded:

1. ``ffprobe`` reads the header: no audio stream is :class:`NotAudio`; a duration over
   ``max_audio_s`` is :class:`TooLong` before a single sample is decoded.
2. ``ffmpeg`` streams the first audio stream as 16-bit PCM at the file's own rate and channel
   count through a pipe, a few seconds at a time, so memory stays bounded however long the
   file is (and it never decodes past ``max_audio_s``).
3. Each block becomes a pydub ``AudioSegment``: the channel is picked (0 = left = the caller
   in a call recording; ``None`` mixes all channels), then ``set_frame_rate`` resamples the
   8 kHz phone audio to the model's rate.
4. A ``KaldiRecognizer`` with word timings takes the samples in half-second slices; each
   finished utterance (``Result()``) and the tail (``FinalResult()``) add their words.

Errors (all :class:`SttError`, each with a ``job_status`` for the job and ``retry``: whether
trying again later can help)::

    SttError          job_status     retry
    ├── ModelMissing  "no model"     yes: wait until a model is installed
    ├── ModelCorrupt  "model error"  yes: wait until the model is reinstalled
    ├── NotAudio      "not audio"    no: no audio stream, or ffmpeg cannot decode it
    ├── FileMissing   "no file"      no: the audio file is not there
    ├── TooLong       "too long"     no: longer than max_audio_s
    └── DecodeFailed  "decode error" yes: anything else that went wrong while decoding

A vosk model can be shared by threads; each :meth:`SttEngine.transcribe` call has a
recognizer to itself, so one engine serves several decodes at once. Recognizers are kept for
the next file (at most ``MAX_IDLE_RECOGNIZERS``): a small model composes its decoding graph
on the fly (HCLr.fst with Gr.fst) and caches it inside the recognizer, and a fresh one spends
about 2-3 s warming that cache up; a warm one decodes a short file about ten times faster.
vosk 0.3.45 counts a reused recognizer's time from its first sample ever, so the words'
times are shifted back by what the recognizer had heard before this file; vosk computes
that clock in single precision, so a recognizer is retired after ``RECOGNIZER_RETIRE_S`` of
audio, while the clock is still exact to a few milliseconds. A recognizer that stopped in
the middle of a file (an error, a file too long) is dropped, not reused.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import vosk
from pydub import AudioSegment
from pydub.utils import get_encoder_name, get_prober_name

from ivr.errors import HotlineError

logger = logging.getLogger(__name__)

DEFAULT_MAX_AUDIO_S = 3600.0  # as SttSettings.max_audio_s
BLOCK_S = 4.0  # seconds of audio read from ffmpeg and resampled at a time
SLICE_S = 0.5  # seconds of audio handed to the recognizer per AcceptWaveform
PROBE_TIMEOUT_S = 30.0
SAMPLE_WIDTH = 2  # 16-bit PCM throughout
MAX_IDLE_RECOGNIZERS = 4  # warm recognizers kept per engine for later files
RECOGNIZER_RETIRE_S = 4 * 3600.0  # audio one recognizer hears before it is dropped


# --- errors ------------------------------------------------------------------------------
class SttError(HotlineError):
    """A transcription could not be made.

    ``job_status`` is the text the job's row shows; ``status`` stays HotlineError's HTTP code
    (422: the audio or the model cannot be used) should one ever reach a web response."""

    slug = "stt-error"
    status = 422
    job_status: str = "stt error"
    retry: bool = True


class ModelMissing(SttError):
    """No vosk model at the configured path: jobs wait (``no model``) until one is installed."""

    slug = "stt-model-missing"
    job_status = "no model"
    retry = True


class ModelCorrupt(SttError):
    """The model folder is incomplete or vosk cannot load it: jobs wait (``model error``)."""

    slug = "stt-model-corrupt"
    job_status = "model error"
    retry = True


class NotAudio(SttError):
    """The file is not audio ffmpeg can read, or has no audio stream: the job is dead at once."""

    slug = "stt-not-audio"
    job_status = "not audio"
    retry = False


class FileMissing(SttError):
    """The audio file to transcribe does not exist: the job is dead at once."""

    slug = "stt-file-missing"
    job_status = "no file"
    retry = False


class TooLong(SttError):
    """The audio is longer than ``stt.max_audio_s``: the job is dead at once."""

    slug = "stt-too-long"
    job_status = "too long"
    retry = False


class DecodeFailed(SttError):
    """ffprobe or the decoder failed on a file that looked like audio: the job is retried."""

    slug = "stt-decode-failed"
    job_status = "decode error"
    retry = True


# --- results -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float  # seconds from the start of the file
    end: float
    conf: float  # 0..1


@dataclass(frozen=True, slots=True)
class SttResult:
    text: str
    words: list[Word]
    confidence: float | None  # mean word confidence; None when no word was heard
    audio_s: float  # seconds of audio decoded
    decode_s: float  # wall-clock seconds the transcription took (probe included)

    @property
    def silent(self) -> bool:
        """No speech found."""
        return not self.words

    @property
    def rtf(self) -> float:
        """Real-time factor: decode seconds per second of audio (0 for an empty file)."""
        return self.decode_s / self.audio_s if self.audio_s > 0 else 0.0

    def words_json(self) -> list[dict[str, Any]]:
        """The words as stored in ``Transcript.words``."""
        return [asdict(w) for w in self.words]


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What ffprobe says about a file's first audio stream."""

    duration_s: float | None  # None: the container does not say
    sample_rate: int
    channels: int
    codec: str


# --- the model ---------------------------------------------------------------------------
# Files without which vosk cannot build a recognizer (small models: HCLr.fst + Gr.fst;
# big ones: HCLG.fst).
REQUIRED_FILES = ("am/final.mdl", "conf/mfcc.conf")
GRAPHS = (("graph/HCLG.fst",), ("graph/HCLr.fst", "graph/Gr.fst"))

_loaded: dict[tuple[Path, str], SttEngine] = {}
_load_lock = threading.Lock()


def model_problems(model_path: Path) -> list[str]:
    """What makes a folder unusable as a vosk model, before vosk is asked (empty: none)."""
    problems = [f"{name} missing or empty" for name in REQUIRED_FILES
                if not _nonempty(model_path / name)]  # fmt: skip
    if not any(all(_nonempty(model_path / name) for name in graph) for graph in GRAPHS):
        problems.append("graph/HCLG.fst (or graph/HCLr.fst with graph/Gr.fst) missing or empty")
    return problems


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def model_sample_rate(model_path: Path) -> int:
    """The rate the model's features are computed at (conf/mfcc.conf; Kaldi's default 16 kHz)."""
    for line in (model_path / "conf" / "mfcc.conf").read_text(errors="replace").splitlines():
        key, _, value = line.strip().partition("=")
        if key == "--sample-frequency":
            return int(float(value))
    return 16000


def model_display_name(model_path: Path) -> str:
    """The model folder's name; a generic ``model`` folder (as in a wheel) gets its parent's."""
    path = model_path.resolve()
    return f"{path.parent.name}/{path.name}" if path.name == "model" else path.name


class SttEngine:
    """A loaded vosk model. Build it with :meth:`load`; decode with :meth:`transcribe`."""

    def __init__(self, model: vosk.Model, model_path: Path, language: str) -> None:
        self._model = model
        self.model_path = model_path
        self.model_name = model_display_name(model_path)
        self.language = language
        self.sample_rate = model_sample_rate(model_path)
        self._idle: list[_Recognizer] = []  # warm, finished recognizers for the next file
        self._idle_lock = threading.Lock()

    @classmethod
    def load(cls, model_path: Path, language: str) -> SttEngine:
        """The engine for this model, loaded once per process (later calls return it).

        Raises :class:`ModelMissing` when the folder is not there and :class:`ModelCorrupt`
        when files are missing or vosk cannot build a model and a recognizer from it.
        Neither is cached: a model installed later is picked up by the next call."""
        key = (model_path.resolve(), language)
        with _load_lock:
            engine = _loaded.get(key)
            if engine is None:
                engine = _loaded[key] = cls._load(key[0], language)
            return engine

    @classmethod
    def _load(cls, model_path: Path, language: str) -> SttEngine:
        if not model_path.is_dir():
            raise ModelMissing(
                f"no vosk model at {model_path} (install one with `ivr stt install-model ZIP` "
                "and set IVR_STT__MODEL_PATH)",
                model_path=str(model_path),
            )
        problems = model_problems(model_path)
        if problems:
            raise ModelCorrupt(
                f"vosk model at {model_path} is incomplete: {'; '.join(problems)}",
                model_path=str(model_path),
            )
        vosk.SetLogLevel(-1)
        started = time.monotonic()
        try:
            model = vosk.Model(str(model_path))
            engine = cls(model, model_path, language)
            # The decoding graph is read when the first recognizer is made: make one now,
            # so a damaged graph shows at load time and not in the middle of a job.
            engine._release(engine._new_recognizer())
        except Exception as exc:  # vosk raises bare Exception("Failed to create a model")
            raise ModelCorrupt(
                f"vosk cannot load the model at {model_path}: {exc}", model_path=str(model_path)
            ) from exc
        logger.info(
            "stt model loaded",
            extra={"model": engine.model_name, "language": language,
                   "sample_rate": engine.sample_rate,
                   "load_s": round(time.monotonic() - started, 2)},
        )  # fmt: skip
        return engine

    # --- recognizers -----------------------------------------------------------------------
    def _new_recognizer(self) -> _Recognizer:
        recognizer = vosk.KaldiRecognizer(self._model, self.sample_rate)
        recognizer.SetWords(True)
        return _Recognizer(recognizer)

    def _acquire(self) -> _Recognizer:
        with self._idle_lock:
            if self._idle:
                return self._idle.pop()
        try:
            return self._new_recognizer()
        except Exception as exc:  # vosk raises bare Exception("Failed to create a recognizer")
            raise ModelCorrupt(f"vosk cannot make a recognizer: {exc}") from exc

    def _release(self, recognizer: _Recognizer) -> None:
        """Keep a recognizer that finished a file (FinalResult) for the next one."""
        if recognizer.samples_before > RECOGNIZER_RETIRE_S * self.sample_rate:
            return
        with self._idle_lock:
            if len(self._idle) < MAX_IDLE_RECOGNIZERS:
                self._idle.append(recognizer)

    # --- decoding --------------------------------------------------------------------------
    def transcribe(
        self,
        path: Path,
        *,
        channel: int | None = None,
        max_audio_s: float = DEFAULT_MAX_AUDIO_S,
        progress: Callable[[float], None] | None = None,
    ) -> SttResult:
        """Transcribe one audio file of any format ffmpeg reads.

        ``channel``: 0 = left (the caller in a call recording), 1 = right, ``None`` = all
        channels mixed; a mono file has just the one. ``progress`` gets the fraction done
        (0..1) after each block; an exception it raises propagates as it is."""
        if channel is not None and channel < 0:
            raise ValueError(f"channel must be >= 0, not {channel}")
        started = time.monotonic()
        info = probe(path)
        if info.duration_s is not None and info.duration_s > max_audio_s:
            raise TooLong(
                f"{path.name} is {info.duration_s:.0f} s long; the most is {max_audio_s:.0f} s",
                duration_s=info.duration_s,
            )
        if channel is not None and info.channels > 1 and channel >= info.channels:
            raise NotAudio(
                f"{path.name} has {info.channels} channels: there is no channel {channel}"
            )
        decoder = _Decode(self, path, info, channel, max_audio_s)
        with closing(decoder.run()) as steps:
            for fraction in steps:
                if progress is not None:
                    progress(fraction)
        return decoder.result(time.monotonic() - started)


@dataclass(slots=True)
class _Recognizer:
    """A KaldiRecognizer and the samples it heard in earlier files (its clock's offset)."""

    kaldi: vosk.KaldiRecognizer
    samples_before: int = 0


def probe(path: Path) -> AudioInfo:
    """The first audio stream's format, from the header (ffprobe; nothing is decoded)."""
    if not path.is_file():
        raise FileMissing(f"no such audio file: {path}")
    command = [get_prober_name(), "-v", "error", "-of", "json", "-show_format",
               "-show_streams", "-select_streams", "a", _ffmpeg_input(path)]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DecodeFailed(f"ffprobe failed on {path.name}: {exc}") from exc
    reason = _last_line(done.stderr)
    if done.returncode != 0:
        raise NotAudio(f"{path.name} is not an audio file ffmpeg can read: {reason}")
    try:
        doc = json.loads(done.stdout or b"{}")
    except json.JSONDecodeError as exc:
        raise DecodeFailed(f"ffprobe said something unreadable about {path.name}") from exc
    streams = doc.get("streams") or []
    if not streams:
        kind = doc.get("format", {}).get("format_long_name", "unknown")
        raise NotAudio(f"{path.name} has no audio stream (format: {kind})")
    stream = streams[0]
    try:
        rate = int(stream.get("sample_rate") or 0)
        channels = int(stream.get("channels") or 0)
    except ValueError:
        rate = channels = 0
    if rate <= 0 or channels <= 0:
        raise NotAudio(f"{path.name}: the audio stream has no sample rate or channel count")
    return AudioInfo(
        duration_s=_duration(doc.get("format", {}).get("duration"), stream.get("duration")),
        sample_rate=rate,
        channels=channels,
        codec=str(stream.get("codec_name", "?")),
    )


def _duration(*values: object) -> float | None:
    for value in values:
        try:
            seconds = float(str(value))
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def _ffmpeg_input(path: Path) -> str:
    # file: + an absolute path: a name such as "-x.wav" or "a:b.wav" stays a file name
    return f"file:{path.resolve()}"


def _last_line(stderr: bytes) -> str:
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no reason given"


class _Decode:
    """One file through ffmpeg, pydub and a recognizer; :meth:`run` yields progress."""

    def __init__(
        self,
        engine: SttEngine,
        path: Path,
        info: AudioInfo,
        channel: int | None,
        max_audio_s: float,
    ) -> None:
        self.engine = engine
        self.path = path
        self.info = info
        self.channel = channel
        self.max_audio_s = max_audio_s
        self.words: list[Word] = []
        self.texts: list[str] = []
        self.frames = 0  # source frames decoded
        self.offset_s = 0.0  # the recognizer's clock at this file's start

    def run(self) -> Generator[float]:
        """Decode block by block. SttErrors pass; anything else becomes DecodeFailed."""
        try:
            yield from self._run()
        except SttError:
            raise
        except Exception as exc:  # ffmpeg, pydub or vosk failing in a way not foreseen
            logger.exception("stt decode failed", extra={"file": self.path.name})
            raise DecodeFailed(
                f"decoding {self.path.name} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _run(self) -> Generator[float]:
        info = self.info
        held = self.engine._acquire()
        recognizer = held.kaldi
        self.offset_s = held.samples_before / self.engine.sample_rate
        fed = 0  # samples at the model's rate handed to the recognizer
        frame_bytes = SAMPLE_WIDTH * info.channels
        block_bytes = int(BLOCK_S * info.sample_rate) * frame_bytes
        slice_bytes = int(SLICE_S * self.engine.sample_rate) * SAMPLE_WIDTH
        # never decode more than max_audio_s (+1 s to tell "too long" from "just right")
        command = [get_encoder_name(), "-nostdin", "-v", "error", "-i", _ffmpeg_input(self.path),
                   "-map", "0:a:0", "-t", f"{self.max_audio_s + 1:.3f}",
                   "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1"]  # fmt: skip
        with tempfile.TemporaryFile() as stderr:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
            )
            assert process.stdout is not None
            try:
                pending = b""
                while True:
                    data = _read_full(process.stdout, block_bytes)
                    if not data:
                        break
                    data = pending + data
                    usable = len(data) - len(data) % frame_bytes
                    data, pending = data[:usable], data[usable:]
                    self.frames += usable // frame_bytes
                    if self.frames > self.max_audio_s * info.sample_rate:
                        raise TooLong(
                            f"{self.path.name} is longer than {self.max_audio_s:.0f} s",
                            duration_s=self.frames / info.sample_rate,
                        )
                    mono = self._to_model_rate(data)
                    fed += len(mono) // SAMPLE_WIDTH
                    for start in range(0, len(mono), slice_bytes):
                        if recognizer.AcceptWaveform(mono[start : start + slice_bytes]):
                            self._collect(recognizer.Result())
                    if info.duration_s:
                        yield min(1.0, self.frames / info.sample_rate / info.duration_s)
                returncode = process.wait()
            finally:
                if process.poll() is None:  # stopped early: too long, an error, or closed
                    process.kill()
                process.stdout.close()
                process.wait()
            if returncode != 0:
                stderr.seek(0)
                raise NotAudio(f"ffmpeg cannot decode {self.path.name}: "
                               f"{_last_line(stderr.read())}")  # fmt: skip
        self._collect(recognizer.FinalResult())
        held.samples_before += fed
        self.engine._release(held)
        yield 1.0

    def _to_model_rate(self, data: bytes) -> bytes:
        """One block of source PCM: pick the channel (or mix), resample (pydub)."""
        info = self.info
        segment = AudioSegment(
            data=data, sample_width=SAMPLE_WIDTH, frame_rate=info.sample_rate,
            channels=info.channels,
        )  # fmt: skip
        if info.channels > 1:
            segment = (
                segment.set_channels(1)
                if self.channel is None
                else segment.split_to_mono()[self.channel]
            )
        raw: bytes = segment.set_frame_rate(self.engine.sample_rate).raw_data
        return raw

    def _collect(self, result_json: str) -> None:
        doc = json.loads(result_json)
        words = [
            Word(word=str(w["word"]), start=self._time(w["start"]), end=self._time(w["end"]),
                 conf=min(1.0, max(0.0, float(w["conf"]))))
            for w in doc.get("result", [])
        ]  # fmt: skip
        text = str(doc.get("text", "")).strip()
        self.words.extend(words)
        if text:
            self.texts.append(text)

    def _time(self, value: object) -> float:
        """A word time in seconds from the start of this file."""
        return max(0.0, round(float(str(value)) - self.offset_s, 6))

    def result(self, elapsed_s: float) -> SttResult:
        confidence = sum(w.conf for w in self.words) / len(self.words) if self.words else None
        return SttResult(
            text=" ".join(self.texts),
            words=self.words,
            confidence=confidence,
            audio_s=self.frames / self.info.sample_rate,
            decode_s=elapsed_s,
        )


def _read_full(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes: fewer only at the end of the stream."""
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
