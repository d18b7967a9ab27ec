"""Offline benchmark of the demo's fast path: ``python -m benchmarks [--smoke] [--output FILE] [--parts ...]``.

In one run, on this machine, it measures (targets and the latest results: BENCHMARKS.md):

- our path (`images.load_image`, which decodes only what the model needs, then `inference.classify.classify`) against
  transformers' ``pipeline("image-classification")`` on the same files and checkpoint, in fp32 and in int8 (fp16 on
  CUDA), comparing the top-5 labels and the logits;
- the HTTP round trip through the launched ``app.py`` against a do-nothing Gradio endpoint (Gradio's own floor);
- how soon ``app.py`` answers ``/`` against ``python -c "import gradio"``;
- throughput with concurrent clients, memory with every catalog model loaded, and switching between models.

Nothing reaches the network. Checkpoints with random weights and the real architectures and sizes
(`beit_demo.testing.checkpoints`) are served by the Hub double into a temporary ``HF_HOME``; each measurement runs
in a fresh process (`benchmarks.workers`) that reads only that cache (``HF_HUB_OFFLINE=1``). Timings go
through `benchmarks.clock.QuietClock`, which retakes samples disturbed by other processes.
``--smoke`` uses tiny checkpoints and one iteration: it checks that every row is still produced, not speed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from beit_demo.catalog import CATALOG, DEFAULT_MODEL_KEY
from beit_demo.testing.app_process import APP_COMMAND, REPO_ROOT, serve
from benchmarks.clock import QuietClock, summarize

PHOTOS = REPO_ROOT / "tests" / "data" / "photos"  # real photos, in the repo (credits: README)
FACE_SCENE = REPO_ROOT / "tests" / "data" / "face-mask" / "scene_1.jpg"  # three faces (test data: README credits)
FASHION_TILE = REPO_ROOT / "tests" / "data" / "fashion-mnist" / "7_sneaker_0.png"
_PHOTO_NAMES = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg", "horse.jpg")
_BIG_SOURCE = "coffee.jpg"
_BIG_SIZE = (4243, 2828)  # 12.0 megapixels in the photo's own 3:2 aspect, like a phone camera's picture
PARTS = ("inference", "memory", "http", "startup", "faces", "adapters", "explain", "bulk", "evaluate", "live")


class BenchmarkError(RuntimeError):
    """A benchmark step failed; the message holds the end of its log."""


@dataclass(frozen=True)
class Plan:
    """How much to measure: the full run, or the smoke run that only checks that everything still runs."""

    checkpoint_size: str  # "base": the real architectures' sizes; "tiny": milliseconds per forward pass
    warmup: int  # untimed calls of each contender first
    rounds: int  # interleaved timed rounds on the 12 MP JPEG
    photo_rounds: int  # interleaved timed rounds on each real photo
    http_rounds: int  # interleaved round trips: app, do-nothing endpoint, in-process classify()
    throughput_requests: int  # requests per throughput measurement (a multiple of the client count)
    throughput_rounds: int  # sequential / concurrent measurements, interleaved
    clients: int  # concurrent clients in the throughput measurement
    startup_rounds: int  # interleaved "app answers /" / "import gradio" measurements
    switches: int  # timed switches between loaded models
    bulk_images: int  # images in the folder the command line classifies
    live_seconds: float  # how long the live stream is timed, per precision


FULL_PLAN = Plan("base", 2, 15, 3, 15, 16, 3, 8, 3, 500, 64, 20)
SMOKE_PLAN = Plan("tiny", 1, 1, 1, 1, 8, 1, 8, 1, 10, 4, 1)


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    measurement: str
    ours: str
    reference: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None  # None: shown for information, no target


# -- the command ---------------------------------------------------------------------------------------------------


def run_benchmark(smoke: bool = False, output: str | None = None, parts: Sequence[str] = PARTS) -> int:
    """Run the benchmark, print the results table, and write it to ``output`` as Markdown when given.

    Args:
        smoke: tiny checkpoints and one iteration of everything (checks the benchmark runs; numbers mean nothing).
        output: a Markdown file to write the table, the command and the machine to.
        parts: which measurements to run (all of `PARTS` by default; a GPU machine without gradio runs "inference").

    Returns:
        0: every measurement ran (targets missed are reported, not failed).

    Raises:
        BenchmarkError: a measurement failed; the message holds the end of its log.
    """
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"Unknown benchmark parts {unknown}; choose from {', '.join(PARTS)}")
    plan = SMOKE_PLAN if smoke else FULL_PLAN
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="beit-demo-bench-"))
    try:
        session = _Session(work, plan)
        _say(f"Building {plan.checkpoint_size} checkpoints and serving them from the Hub double into {work} ...")
        results: dict[str, Any] = {"prepare": session.worker("prepare", size=plan.checkpoint_size)}
        rows: list[Row] = []
        if "inference" in parts:
            _say("Timing classify() against pipeline() ...")
            results["inference"] = session.worker("inference", photos=session.photos, big=session.big)
            rows += _inference_rows(results["inference"])
        if "memory" in parts:
            for precision in ("fp32", "int8"):
                _say(f"Loading every catalog model ({precision}) ...")
                results[f"memory-{precision}"] = session.worker("memory", precision=precision, image=session.big)
            rows += _memory_rows(results["memory-fp32"], results["memory-int8"])
        if "http" in parts:
            _say("Timing round trips through the launched app and a do-nothing Gradio app ...")
            results["http"] = session.worker("http", image=session.big, work=str(work))
            rows += _http_rows(results["http"])
        if "startup" in parts:
            _say("Timing start-up ...")
            results["startup"] = _startup(session)
            rows += _startup_rows(results["startup"])
        if "faces" in parts:
            _say("Timing face detection and face-by-face classification ...")
            results["faces"] = session.worker("faces", scene=str(FACE_SCENE), work=str(work))
            rows += _faces_rows(results["faces"])
        if "explain" in parts:
            _say("Timing explanations against a plain classify ...")
            results["explain"] = session.worker("explain", photo=session.photos[0])
            rows += _explain_rows(results["explain"])
        if "adapters" in parts:
            _say("Timing the Fashion-MNIST adapter ...")
            results["adapters"] = session.worker("adapters", tile=str(FASHION_TILE), work=str(work))
            rows += _adapter_rows(results["adapters"])
        if "bulk" in parts:
            _say("Timing the classify command line (local and Ray) against /classify one image at a time ...")
            results["bulk"] = session.worker("bulk", photos=session.photos, work=str(work))
            rows += _bulk_rows(results["bulk"])
        if "evaluate" in parts:
            _say("Timing an evaluation of two models against their forward passes alone ...")
            results["evaluate"] = session.worker("evaluate", photos=session.photos, work=str(work))
            rows += _evaluate_rows(results["evaluate"])
        if "live" in parts:
            _say("Timing a live camera stream of three faces ...")
            results["live"] = session.worker("live", scene=str(FACE_SCENE))  # the plan gives live_seconds
            rows += _live_rows(results["live"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = (load_before, os.getloadavg()[0])
    report = _report(rows, results, smoke, parts, load, (time.perf_counter() - started) / 60)
    print(report)
    if output:
        Path(output).write_text(report + "\n", encoding="utf-8")
    return 0


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Session:
    """One run's scratch folder, images, and the environment every child process gets."""

    def __init__(self, work: Path, plan: Plan):
        from PIL import Image

        self.work = work
        self.plan = plan
        (work / "logs").mkdir()
        self.photos = [str(PHOTOS / name) for name in _PHOTO_NAMES]
        self.big = str(work / "photo-12mp.jpg")
        with Image.open(PHOTOS / _BIG_SOURCE) as source:
            source.convert("RGB").resize(_BIG_SIZE, Image.Resampling.BICUBIC).save(self.big, quality=90)
        # The user's own BEIT_DEMO_* and HF_* settings would change what is measured.
        env = {name: value for name, value in os.environ.items() if not name.startswith(("BEIT_DEMO_", "HF_"))}
        env.update(
            HF_HOME=str(work / "hf-home"),
            HF_HUB_OFFLINE="1",  # measurements read the cache only; "prepare" alone talks to the Hub double
            HF_HUB_DISABLE_TELEMETRY="1",
            GRADIO_TEMP_DIR=str(work / "gradio"),
            GRADIO_ANALYTICS_ENABLED="False",
            PYTHONUNBUFFERED="1",
        )
        self.env = env

    def worker(self, name: str, **args: Any) -> dict[str, Any]:
        """Run the measurement ``name`` of `benchmarks.workers` in a fresh process; return its result."""
        result_path = self.work / f"{name}-{time.monotonic_ns()}.json"
        log_path = self.work / "logs" / f"{name}.log"
        payload = json.dumps({**asdict(self.plan), **args})
        command = [sys.executable, "-m", "benchmarks.workers", name, payload, str(result_path)]
        with open(log_path, "a") as log:
            finished = subprocess.run(command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if finished.returncode != 0 or not result_path.is_file():
            tail = log_path.read_text(errors="replace")[-4000:]
            raise BenchmarkError(f"Benchmark step {name!r} failed (exit {finished.returncode}):\n{tail}")
        return json.loads(result_path.read_text())


def _startup(session: _Session) -> dict[str, Any]:
    """Seconds until app.py answers / against seconds to run ``python -c "import gradio"``, interleaved."""
    import_gradio = [sys.executable, "-c", "import gradio"]
    log_path = session.work / "logs" / "startup.log"
    clock = QuietClock(attempts=2)  # counts this process and its finished children as ours

    def app_answers() -> float:
        with serve(APP_COMMAND, session.env, log_path) as app:
            return app.answered_s

    timings: dict[str, list[float]] = {"app": [], "import_gradio": []}
    for round_index in range(session.plan.startup_rounds + 1):  # the first round warms the file cache: dropped
        answered = clock.time(app_answers)[1]
        imported = clock.time(lambda: subprocess.run(import_gradio, cwd=REPO_ROOT, env=session.env, check=True))[0]
        if round_index:
            timings["app"].append(answered)
            timings["import_gradio"].append(imported)
    return {**{name: statistics.median(times) for name, times in timings.items()}, "clock": clock.record()}


# -- the table -----------------------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 10 else f"{value:.2f} ms"


def _mb(value: float) -> str:
    return f"{value / 1e6:,.0f} MB"


def _inference_rows(result: dict[str, Any]) -> list[Row]:
    rows = []
    for key, model in result["models"].items():
        rows += _model_rows(key, model, result["low_precision"], result["device"])
    return rows


def _model_rows(key: str, model: dict[str, Any], low: str, device: str) -> list[Row]:
    headline = key == DEFAULT_MODEL_KEY  # the targets are set on BEiT-base with 21,841 labels
    title = "BEiT-base, 21,841 labels" if headline else "DeiT-base, 2 labels"
    medians = model["median_ms"]
    big, *photos = medians["pipeline"]  # the 12 MP JPEG comes first
    pipeline_ms, fp32_ms, low_ms = medians["pipeline"][big], medians["fp32"][big], medians[low][big]
    fp32_ratio, low_ratio = pipeline_ms / fp32_ms, pipeline_ms / low_ms
    same, images = sum(model["top5_same"].values()), len(model["top5_same"])
    logits_cosine = min(model["cosine_logits"].values())
    hidden_cosine = min(model["cosine_hidden"].values())
    cpu_int8 = headline and low == "int8"
    on = f"{device}, " if device != "cpu" else ""
    rows = [
        Row(
            f"{title}, 12 MP JPEG, {on}fp32: classify() vs pipeline()",
            _ms(fp32_ms),
            _ms(pipeline_ms),
            f"{fp32_ratio:.2f}x faster",
            ">= 2.2x" if headline and device == "cpu" else "",
            fp32_ratio >= 2.2 if headline and device == "cpu" else None,
        ),
        Row(
            f"{title}: top-5 labels (in order) identical to pipeline(), fp32, 12 MP JPEG + {images - 1} photos",
            f"{same} of {images} images",
            target="every image" if headline else "",
            met=same == images if headline else None,
        ),
        Row(
            f"{title}, 12 MP JPEG, {on}{low}: classify() vs pipeline() in fp32",
            _ms(low_ms),
            _ms(pipeline_ms),
            f"{low_ratio:.2f}x faster",
            ">= 5x" if cpu_int8 else "",
            low_ratio >= 5 if cpu_int8 else None,
        ),
        Row(
            f"{title}: {low} vs fp32, cosine similarity of logits / of the last hidden state (worst of {images})",
            f"{logits_cosine:.5f} / {hidden_cosine:.5f}",
            target=">= 0.999 (logits)" if cpu_int8 else "",
            met=logits_cosine >= 0.999 if cpu_int8 else None,
        ),
        Row(
            f"{title}: {low} top-1 label same as fp32",
            f"{sum(model['low_top1_same'].values())} of {images} images",
        ),
    ]
    photo_pipeline = statistics.mean(medians["pipeline"][path] for path in photos)
    photo_fp32 = statistics.mean(medians["fp32"][path] for path in photos)
    photo_low = statistics.mean(medians[low][path] for path in photos)
    rows.append(
        Row(
            f"{title}, {len(photos)} real photos (0.1-0.3 MP), {on}mean of medians: fp32 / {low} vs pipeline()",
            f"{_ms(photo_fp32)} / {_ms(photo_low)}",
            _ms(photo_pipeline),
            f"{photo_pipeline / photo_fp32:.2f}x / {photo_pipeline / photo_low:.2f}x faster",
        )
    )
    stages = " + ".join(f"{name} {_ms(value)}" for name, value in model["stages_ms"].items())
    rows.append(Row(f"{title}: our stages on the 12 MP JPEG, {on}medians", stages))
    if "floor" in model:
        floor = model["floor"]
        forward_ms = model["stages_ms"]["forward fp32"]
        rows.append(
            Row(
                f"{title}: fp32 forward pass vs its {floor['flops'] / 1e9:.1f} GFLOP at the best matrix-multiply "
                f"rate measured here ({floor['flops_per_s'] / 1e9:.0f} GFLOP/s)",
                _ms(forward_ms),
                _ms(floor["floor_ms"]),
                f"{forward_ms / floor['floor_ms']:.2f}x the floor",
            )
        )
    return rows


def _memory_rows(fp32: dict[str, Any], int8: dict[str, Any]) -> list[Row]:
    rows = []
    for precision, result in (("fp32", fp32), ("int8", int8)):
        weights = sum(result["parameter_bytes"].values())
        ratio = result["loaded_rss"] / (weights + result["idle_rss"])
        loaded = len(result["loaded_keys"])
        rows.append(
            Row(
                f"RSS with {loaded} catalog models loaded, {precision}, vs their parameter bytes + idle RSS",
                _mb(result["loaded_rss"]),
                f"{_mb(weights)} + {_mb(result['idle_rss'])}",
                f"{ratio:.3f}x",
                "<= 1.15x",
                ratio <= 1.15 and loaded == len(CATALOG),
            )
        )
    rows.append(
        Row(
            "switch to an already-loaded model (registry borrow; median, worst in brackets)",
            f"{_ms(fp32['switch_ms'])} ({_ms(fp32['switch_max_ms'])})",
            target="<= 5 ms",
            met=fp32["switch_ms"] <= 5,
        )
    )
    return rows


def _http_rows(result: dict[str, Any]) -> list[Row]:
    median = result["median_ms"]
    overhead = median["app"] - median["classify"]
    ratio = overhead / median["noop"]
    speedup = result["concurrent_per_s"] / result["sequential_per_s"]
    return [
        Row(
            "HTTP round trip through app.py (gradio_client, 12 MP JPEG) minus in-process classify(), "
            "vs a do-nothing Gradio endpoint",
            f"{_ms(median['app'])} - {_ms(median['classify'])} = {_ms(overhead)}",
            _ms(median["noop"]),
            f"{ratio:.2f}x",
            "<= 1.1x",
            ratio <= 1.1,
        ),
        Row(
            f"throughput, {result['clients']} concurrent clients vs one at a time (12 MP JPEG, fp32)",
            f"{result['concurrent_per_s']:.2f} /s",
            f"{result['sequential_per_s']:.2f} /s",
            f"{speedup:.2f}x",
            ">= 1.3x",
            speedup >= 1.3,
        ),
    ]


def _startup_rows(result: dict[str, Any]) -> list[Row]:
    ratio = result["app"] / result["import_gradio"]
    return [
        Row(
            'app.py answers / vs python -c "import gradio"',
            f"{result['app']:.2f} s",
            f"{result['import_gradio']:.2f} s",
            f"{ratio:.2f}x",
            "<= 1.3x",
            ratio <= 1.3,
        )
    ]


def _slower_row(measurement: str, ours_ms: float, reference_ms: float, at_most: float) -> Row:
    """A time against a reference time, judged on their ratio (ours may take at most ``at_most`` times as long)."""
    ratio = ours_ms / reference_ms
    return Row(measurement, _ms(ours_ms), _ms(reference_ms), f"{ratio:.2f}x", f"<= {at_most:g}x", ratio <= at_most)


def _faces_rows(result: dict[str, Any]) -> list[Row]:
    per_second = " / ".join(f"{count}: {rate:.1f}" for count, rate in result["faces_per_s"].items())
    return [
        _slower_row(
            f"{result['title']}: find + classify the 3 faces of a {result['scene_size']} photo vs one plain classify",
            result["faces_ms"],
            result["classify_ms"],
            1.6,
        ),
        Row(
            "face detection alone (whole + 4 quarters) on a 12 MP JPEG, decode excluded (median)",
            _ms(result["detect_12mp_ms"]),
            target="<= 15 ms",
            met=result["detect_12mp_ms"] <= 15,
        ),
        Row(
            "face detection, whole photo only (no quarters), same 12 MP image",
            _ms(result["detect_12mp_whole_ms"]),
        ),
        Row(f"{result['title']}: faces per second (find + classify) with 1 / 4 / 16 faces in the photo", per_second),
    ]


# The explanation issue's targets: the default at most 3x a plain classify, attention rollout 1.5x. Integrated
# gradients (the default since it points right on every trained model) runs 12 forward and backward passes, so its
# row shows the target missed; the README says what it costs and which method is cheaper.
_EXPLAIN_TARGETS = {
    "integrated gradients": 3.0,
    "gradient-weighted rollout": 3.0,
    "gradient x activation": 3.0,
    "attention rollout": 1.5,
}


def _explain_rows(result: dict[str, Any]) -> list[Row]:
    return [
        _slower_row(
            f"{result['title']}: explain ({method}) vs a plain classify of the same photo",
            result["explain_ms"][method],
            result["classify_ms"],
            _EXPLAIN_TARGETS[method],
        )
        for method in result["explain_ms"]
    ]


def _adapter_rows(result: dict[str, Any]) -> list[Row]:
    return [
        Row(
            "Fashion-MNIST adapter on a 12 MP product photo, fully decoded (decode excluded; median)",
            _ms(result["full_ms"]),
            target="<= 10 ms",
            met=result["full_ms"] <= 10,
        ),
        Row(
            f"Fashion-MNIST adapter on the same photo as the app decodes it for the model ({result['decoded_size']})",
            _ms(result["decoded_ms"]),
        ),
    ]


def _live_rows(result: dict[str, Any]) -> list[Row]:
    rows = []
    for precision, figures in result.items():
        stream = f"Live, face-mask DeiT-base {precision}, 640 x 480 frames of a pan over 3 faces"
        rows += [
            Row(
                f"{stream}, sent every 0.1 s as the page does: annotated frames per second (faces classified)",
                f"{figures['frames_per_s']:.1f} /s ({figures['classified_per_s']:.1f} /s)",
                target=">= 8 /s",
                met=figures["frames_per_s"] >= 8,
            ),
            Row(
                f"{stream}: from a stream's first frame to its new faces labelled (median)",
                f"{figures['first_label_s']:.2f} s",
                target="<= 1 s",
                met=figures["first_label_s"] <= 1,
            ),
            Row(
                f"{stream}: per-frame work besides classification (detect, track, draw; median)",
                _ms(figures["other_ms"]),
                target="<= 60 ms",
                met=figures["other_ms"] <= 60,
            ),
        ]
    return rows


def _evaluate_rows(result: dict[str, Any]) -> list[Row]:
    overhead = result["evaluation_s"] / result["passes_s"] - 1
    return [
        Row(
            f"evaluate {result['models']} models on {result['images']} photos (decode, batched passes, figures) vs "
            "their forward passes alone on the same photos, decoded beforehand: the evaluation's overhead",
            f"{result['evaluation_s']:.2f} s",
            f"{result['passes_s']:.2f} s",
            f"{overhead:+.1%}",
            "<= 10%",
            overhead <= 0.10,
        ),
        Row(
            "the report's figures (2 models, 10 folders, bootstrap, McNemar, suspects) for 10,000 rows",
            f"{result['figures_s']:.2f} s",
            target="< 1 s",
            met=result["figures_s"] < 1,
        ),
    ]


def _bulk_rows(result: dict[str, Any]) -> list[Row]:
    rate = result["per_s"]
    count = result["images"]

    def row(measurement: str, ours: str, reference: str) -> Row:
        return Row(
            measurement, f"{rate[ours]:.2f} /s", f"{rate[reference]:.2f} /s", f"{rate[ours] / rate[reference]:.2f}x"
        )

    return [
        row(
            f"`python -m beit_demo classify` on {count} photos, end to end (start-up, model load), vs the app "
            "answering /classify one image after another (model in memory)",
            "cli local",
            "http one at a time",
        ),
        row(
            f"the same command with `--engine ray` (a local Ray, {result['cpus']} CPUs) vs the local engine",
            "cli ray",
            "cli local",
        ),
        row(
            f"in one process: classify_files ({count} photos, batches of 8) vs classify one at a time",
            "classify_files",
            "classify one at a time",
        ),
    ]


def _table(rows: Sequence[Row]) -> str:
    lines = ["| measurement | ours | reference | ratio | target | met |", "|---|---|---|---|---|---|"]
    for row in rows:
        met = "" if row.met is None else ("yes" if row.met else "**no**")
        lines.append(f"| {row.measurement} | {row.ours} | {row.reference} | {row.ratio} | {row.target} | {met} |")
    return "\n".join(lines)


def _machine(results: dict[str, Any]) -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        total_kb = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        memory = f", {total_kb / 1024**2:.0f} GiB RAM"
    inference = results.get("inference", {})
    versions = inference.get("versions", {})
    names = ("torch", "transformers", "gradio", "pillow")
    described = ", ".join(f"{name} {versions.get(name) or _version(name)}" for name in names)
    gpu = f"; GPU: {inference['device']}" if inference.get("device", "cpu") != "cpu" else ""
    threads = f"; torch threads: {inference['threads']}" if inference else ""
    return f"{cpu}, {os.cpu_count()} CPUs{memory}{gpu}{threads}; Python {platform.python_version()}, {described}"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _quiet_line(results: dict[str, Any]) -> str:
    records = [
        record
        for result in results.values()
        for name in ("clock", "throughput_clock")
        if isinstance(result, dict) and (record := result.get(name))
    ]
    quiet = summarize(records)
    return (
        f"Other processes' CPU use while samples were taken: median {quiet['median']:.2f} cores, worst "
        f"{quiet['worst']:.2f} ({quiet['samples']} samples kept; {quiet['retaken']} retaken for being disturbed)"
    )


def _report(
    rows: Sequence[Row],
    results: dict[str, Any],
    smoke: bool,
    parts: Sequence[str],
    load: tuple[float, float],
    minutes: float,
) -> str:
    command = "python -m benchmarks" + (" --smoke" if smoke else "")
    if tuple(parts) != PARTS:
        command += f" --parts {','.join(parts)}"
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        f"Command: `{command}` ({when}, {minutes:.1f} min)  ",
        f"Machine: {_machine(results)}  ",
        f"Load average (1 min) before / after: {load[0]:.2f} / {load[1]:.2f}  ",
        _quiet_line(results),
    ]
    if smoke:
        header.append("  \nSmoke run: tiny checkpoints, one iteration. The numbers say nothing about speed.")
    return "\n".join(header) + "\n\n" + _table(rows)


# -- command line --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks``: the benchmark, with a choice of parts (a GPU machine without gradio, say)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny models, one iteration: checks the benchmark runs")
    parser.add_argument("--output", help="also write the table to this Markdown file")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from: {', '.join(PARTS)}")
    args = parser.parse_args(argv)
    return run_benchmark(smoke=args.smoke, output=args.output, parts=[part for part in args.parts.split(",") if part])
