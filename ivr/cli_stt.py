"""``ivr stt``: offline speech-to-text by hand, and the vosk models.

::

    ivr stt transcribe FILE... [--model PATH] [--language xx] [--channel left|right|mix]
                               [--max-audio-s S] [--json]
    ivr stt install-model ZIP [--force] [--unverified] [--checksums DIR]
    ivr stt models [--verify] [--json]
    ivr stt jobs [--status S] [--limit N] [--json]      (ivr/cli_stt_worker.py: the job queue)

``transcribe`` loads the model once (``stt.model_path`` unless ``--model``), then decodes the
files one by one: a progress bar per file on stderr (redrawn in place on a terminal, a line
per 10 % otherwise), then on stdout ``FILE: STATUS`` with the audio length, the decode time,
the real-time factor (decode s / audio s), the confidence, danger words and the text. A file
that fails says why (``not audio``, ``too long``, ...) and the others go on; the exit code
is 1 when any file failed. ``--channel left`` (the default) is the caller in a call
recording; a mono file has one channel whatever is asked. ``--json``: one object per line.

``install-model`` unpacks an official vosk zip into ``stt.models_dir`` and checks every file
against ``models/checksums`` (see ivr/adapters/stt/models.py); a model without checksums
there is refused unless ``--unverified``; ``--force`` replaces an installed one. It ends by
saying which ``IVR_STT__MODEL_PATH`` to set.

``models`` lists the folders in ``stt.models_dir``: complete or not, the configured one
marked; ``--verify`` also checks known ones against their checksums.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from ivr.settings import Settings

CHANNELS = {"left": 0, "right": 1, "mix": None}


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("stt", help="offline speech-to-text (vosk) and its models")
    sub = parser.add_subparsers(dest="stt_command", required=True)

    transcribe = sub.add_parser("transcribe", help="transcribe audio files, with RTF")
    transcribe.add_argument("files", nargs="+", type=Path, metavar="FILE")
    transcribe.add_argument("--model", type=Path, help="model folder (default: stt.model_path)")
    transcribe.add_argument(
        "--language", help="the model's language (default: from --model's name, or stt.language)"
    )
    transcribe.add_argument(
        "--channel", choices=tuple(CHANNELS), default="left",
        help="side of a stereo file: left = the caller (default), right, or mix",
    )  # fmt: skip
    transcribe.add_argument(
        "--max-audio-s", type=float, help="refuse longer files (default: stt.max_audio_s)"
    )
    transcribe.add_argument("--json", action="store_true", help="one JSON object per file")

    install = sub.add_parser("install-model", help="unpack and verify an official model zip")
    install.add_argument("zip", type=Path, metavar="ZIP")
    install.add_argument("--force", action="store_true", help="replace an installed model")
    install.add_argument(
        "--unverified", action="store_true", help="install a model that has no checksums"
    )
    install.add_argument(
        "--checksums", type=Path, help="checksum folder (default: models/checksums)"
    )

    models = sub.add_parser("models", help="list installed models")
    models.add_argument("--verify", action="store_true", help="check files of known models")
    models.add_argument("--json", action="store_true")

    from ivr import cli_stt_worker  # `ivr stt jobs`: the queue's jobs (STT-QUEUE's module)

    cli_stt_worker.register_jobs(sub)


def run(settings: Settings, args: argparse.Namespace) -> int:
    command: str = args.stt_command
    if command == "transcribe":
        return _transcribe(settings, args)
    if command == "install-model":
        return _install(settings, args)
    if command == "models":
        return _models(settings, args)
    if command == "jobs":
        from ivr import cli_stt_worker

        return cli_stt_worker.run_jobs(settings, args)
    raise ValueError(f"unknown stt command {command!r}")


# --- transcribe --------------------------------------------------------------------------
class ProgressBar:
    """``[#####.....]  50% name`` on stderr: redrawn in place on a terminal, else one line
    per 10 %, so a log or a pipe gets a readable record too."""

    WIDTH = 30

    def __init__(self, label: str, stream: TextIO) -> None:
        self.label = label
        self.stream = stream
        self.tty = stream.isatty()
        self.shown = -1

    def __call__(self, fraction: float) -> None:
        percent = max(0, min(100, int(fraction * 100)))
        if percent == self.shown or (not self.tty and percent < min(100, self.shown + 10)):
            return
        self.shown = percent
        filled = percent * self.WIDTH // 100
        bar = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {percent:3d}% {self.label}"
        self.stream.write(f"\r{bar}" if self.tty else f"{bar}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.shown >= 0:
            self.stream.write("\n")
            self.stream.flush()


def _transcribe(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.adapters.stt.engine import SttEngine, SttError, model_display_name
    from ivr.adapters.stt.models import model_language
    from ivr.core.danger import find_danger_words

    named = model_language(model_display_name(args.model)) if args.model else None
    language = args.language or named or settings.stt.language
    engine = SttEngine.load(args.model or settings.stt.model_path, language)
    max_audio_s = args.max_audio_s or settings.stt.max_audio_s
    failed = 0
    for path in args.files:
        bar = ProgressBar(path.name, sys.stderr)
        doc: dict[str, Any] = {"file": str(path), "model": engine.model_name,
                               "language": language}  # fmt: skip
        try:
            result = engine.transcribe(
                path, channel=CHANNELS[args.channel], max_audio_s=max_audio_s, progress=bar
            )
        except SttError as exc:
            failed += 1
            doc |= {"status": exc.job_status, "error": exc.message}
        else:
            doc |= {
                "status": "silent" if result.silent else "ok",
                "text": result.text,
                "words": result.words_json(),
                "confidence": result.confidence,
                "audio_s": round(result.audio_s, 3),
                "decode_s": round(result.decode_s, 3),
                "rtf": round(result.rtf, 4),
                "danger_words": find_danger_words(result.text, settings.stt.danger_words, language),
            }
        finally:
            bar.close()
        _out(json.dumps(doc, ensure_ascii=False) if args.json else _describe(doc))
    if len(args.files) > 1:
        _err(f"{len(args.files)} files: {len(args.files) - failed} transcribed, {failed} failed")
    return 1 if failed else 0


def _describe(doc: dict[str, Any]) -> str:
    if "error" in doc:
        return f"{doc['file']}: {doc['status']}  {doc['error']}"
    confidence = "-" if doc["confidence"] is None else f"{doc['confidence']:.2f}"
    line = (
        f"{doc['file']}: {doc['status']}  {doc['audio_s']:.1f} s audio, "
        f"{doc['decode_s']:.1f} s decode, RTF {doc['rtf']:.2f}, confidence {confidence}"
    )
    if doc["danger_words"]:
        line += f", DANGER: {', '.join(doc['danger_words'])}"
    return line + (f"\n  {doc['text']}" if doc["text"] else "")


# --- models ------------------------------------------------------------------------------
def _install(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.adapters.stt import models as stt_models

    catalog = stt_models.load_catalog(args.checksums or stt_models.CHECKSUMS_DIR)
    try:
        report = stt_models.install_model(
            args.zip, settings.stt.models_dir, catalog=catalog, force=args.force,
            unverified=args.unverified,
        )  # fmt: skip
    except stt_models.ChecksumMismatch as exc:
        _err(f"ivr stt install-model: {exc.message}; nothing was installed")
        for problem in exc.problems:
            _err(f"  {problem}")
        return 1
    for note in report.notes:
        _err(f"warning: {note}")
    checked = "verified against its checksums" if report.verified else "NOT verified"
    official = {True: ", the official zip", False: "", None: ""}[report.official_zip]
    _out(f"installed {report.name} ({report.files} files, {checked}{official}) "
         f"into {report.path}")  # fmt: skip
    _out("use it by setting:")
    _out(f"  IVR_STT__MODEL_PATH={report.path}")
    if report.language is not None:
        _out(f"  IVR_STT__LANGUAGE={report.language}")
    return 0


def _models(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.adapters.stt import models as stt_models
    from ivr.adapters.stt.engine import model_problems

    catalog = stt_models.load_catalog()
    configured = settings.stt.model_path.resolve()
    rows: list[dict[str, Any]] = []
    for path in stt_models.installed_models(settings.stt.models_dir):
        problems = model_problems(path)
        known = catalog.get(path.name)
        verified: bool | None = None
        if args.verify and known is not None:
            problems += stt_models.verify_folder(path, known)
            verified = not problems
        rows.append({"name": path.name, "path": str(path), "complete": not problems,
                     "known": known is not None, "verified": verified,
                     "configured": path.resolve() == configured,
                     "problems": problems})  # fmt: skip
    if args.json:
        _out(json.dumps(rows, ensure_ascii=False))
        return 0
    if not rows:
        _out(f"no models in {settings.stt.models_dir} (install one: ivr stt install-model ZIP)")
    for row in rows:
        mark = "*" if row["configured"] else " "
        state = "complete" if row["complete"] else "BROKEN: " + "; ".join(row["problems"])
        if row["verified"]:
            state += ", verified"
        _out(f"{mark} {row['name']:<32} {state}")
    if not any(row["configured"] for row in rows):
        _out(f"stt.model_path ({settings.stt.model_path}) is not among them")
    return 0
