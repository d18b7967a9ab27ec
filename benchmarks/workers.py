"""The benchmark's measurements, each run in a fresh process: ``python -m benchmarks.workers NAME ARGS OUT``.

A fresh process per measurement keeps them apart (memory, thread pools, imported libraries), and lets each read
the environment `benchmarks.run` gives it: huggingface_hub and gradio read theirs when first imported. ARGS is a
JSON object; the result goes to the file OUT as JSON.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from beit_demo.catalog import CATALOG, DEFAULT_MODEL_KEY, CatalogEntry, CheckpointFormat, get_entry
from beit_demo.testing.app_process import APP_COMMAND, serve
from benchmarks.clock import QuietClock
from benchmarks.noop_app import NOOP_COMMAND

TOP_K = 5
COMPARED_MODELS = (DEFAULT_MODEL_KEY, "facemask-deit")  # BEiT-base with 21,841 labels; DeiT-base


def _median_ms(seconds: Sequence[float]) -> float:
    return statistics.median(seconds) * 1000


def _max_pixels() -> int:
    from beit_demo.config import Settings

    return Settings.from_env().max_pixels


# -- prepare -------------------------------------------------------------------------------------------------------


def prepare(args: dict[str, Any]) -> dict[str, Any]:
    """Serve checkpoints of every catalog repo from the Hub double and download them into HF_HOME."""
    from beit_demo.testing.hub_double import HubDouble  # stdlib only

    started = time.perf_counter()
    with HubDouble() as hub_double:
        # huggingface_hub reads the endpoint when first imported, which happens below, after this line.
        os.environ["HF_ENDPOINT"] = hub_double.url
        os.environ["HF_HUB_OFFLINE"] = "0"
        from beit_demo.testing.checkpoints import catalog_repos
        from beit_demo.testing.timm_checkpoints import timm_beit_files

        for repo_id, files in catalog_repos(args["size"]).items():
            hub_double.add_repo(repo_id, files)
        for entry in CATALOG:
            if entry.source.checkpoint_format is CheckpointFormat.TIMM:
                hub_double.add_repo(entry.repo_id, timm_beit_files(size=args["size"]))
        built = time.perf_counter() - started

        from beit_demo import hub

        downloaded = sum(hub.fetch(entry.source).bytes_downloaded for entry in CATALOG)
    return {"build_s": built, "seconds": time.perf_counter() - started, "bytes": downloaded}


# -- inference: our path against pipeline("image-classification") --------------------------------------------------


def inference(args: dict[str, Any]) -> dict[str, Any]:
    """Our path against the pipeline, interleaved, on every image, for each compared model."""
    import torch
    import transformers

    from beit_demo.models import loading

    clock = QuietClock()
    low = "fp16" if torch.cuda.is_available() else "int8"
    models = {}
    for key in COMPARED_MODELS:
        models[key] = _compare_with_pipeline(get_entry(key), low, args, clock)
        gc.collect()  # one comparison's models are freed before the next loads
    device = loading.select_device("fp32")
    return {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "low_precision": low,
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "models": models,
        "clock": clock.record(),
    }


def _compare_with_pipeline(entry: CatalogEntry, low: str, args: dict[str, Any], clock: QuietClock) -> dict[str, Any]:
    from transformers import pipeline

    from beit_demo import images
    from beit_demo.inference import classify as classifier
    from beit_demo.models.loaded import LoadedModel
    from beit_demo.models.loading import load_model

    max_pixels = _max_pixels()
    fp32 = load_model(entry.source, "fp32")
    reduced = load_model(entry.source, low)
    # What a user would otherwise write, on the same cached checkpoint.
    pipe = pipeline("image-classification", model=entry.repo_id, revision=entry.source.revision, device=fp32.device)

    def ours(loaded: LoadedModel, path: str) -> list[str]:
        image = images.load_image(path, max_pixels=max_pixels, min_size=2 * loaded.input_size)
        return list(classifier.classify(loaded, [image], top_k=TOP_K)[0].scores)

    contenders: dict[str, Callable[[str], list[str]]] = {
        "pipeline": lambda path: [answer["label"] for answer in pipe(path, top_k=TOP_K)],
        "fp32": lambda path: ours(fp32, path),
        low: lambda path: ours(reduced, path),
    }
    big, photos = args["big"], args["photos"]
    rounds = {big: args["rounds"], **{photo: args["photo_rounds"] for photo in photos}}
    seconds: dict[str, dict[str, list[float]]] = {name: {path: [] for path in rounds} for name in contenders}
    labels: dict[str, dict[str, list[str]]] = {name: {} for name in contenders}
    for path in rounds:
        for name, run in contenders.items():
            for _ in range(args["warmup"]):
                labels[name][path] = run(path)
    for round_index in range(max(rounds.values())):
        for path, path_rounds in rounds.items():
            if round_index >= path_rounds:
                continue
            shift = round_index % len(contenders)  # each contender goes first as often as the others
            for name in [*contenders][shift:] + [*contenders][:shift]:
                elapsed, labels[name][path] = clock.time(lambda run=contenders[name], path=path: run(path))
                seconds[name][path].append(elapsed)

    similarity = {path: _similarity(fp32, reduced, path, max_pixels) for path in rounds}
    result = {
        "title": entry.title,
        "num_labels": len(fp32.labels),
        "median_ms": {
            name: {path: _median_ms(times) for path, times in per_file.items()} for name, per_file in seconds.items()
        },
        "top5_same": {path: labels["pipeline"][path] == labels["fp32"][path] for path in rounds},
        "low_top1_same": {path: labels[low][path][0] == labels["fp32"][path][0] for path in rounds},
        "cosine_logits": {path: values[0] for path, values in similarity.items()},
        "cosine_hidden": {path: values[1] for path, values in similarity.items()},
        "stages_ms": _stages(fp32, reduced, big, max_pixels, clock, max(args["rounds"], 5)),
    }
    if fp32.device == "cpu":
        result["floor"] = _floor(pipe.model, fp32, big, max_pixels, clock)
    return result


def _outputs(loaded: Any, pixels: Any) -> tuple[Any, Any]:
    """(logits, last hidden state) as flat float32 CPU tensors."""
    import torch

    parameter = next(loaded.model.parameters())
    dtype = parameter.dtype if parameter.is_floating_point() else torch.float32
    with torch.inference_mode():
        output = loaded.model(pixel_values=pixels.to(loaded.device, dtype), output_hidden_states=True)
    return output.logits.float().cpu().flatten(), output.hidden_states[-1].float().cpu().flatten()


def _similarity(fp32: Any, reduced: Any, path: str, max_pixels: int) -> tuple[float, float]:
    """Cosine similarity of the reduced-precision model's logits and last hidden state to fp32's, same input."""
    import torch

    from beit_demo import images
    from beit_demo.inference import classify as classifier

    image = images.load_image(path, max_pixels=max_pixels, min_size=2 * fp32.input_size)
    pixels = classifier.preprocess(fp32, [image])
    cosines = [
        float(torch.nn.functional.cosine_similarity(exact, approximate, dim=0))
        for exact, approximate in zip(_outputs(fp32, pixels), _outputs(reduced, pixels), strict=True)
    ]
    return cosines[0], cosines[1]


def _stages(fp32: Any, reduced: Any, big: str, max_pixels: int, clock: QuietClock, rounds: int) -> dict[str, float]:
    """Where our time goes on the 12 MP JPEG: decode, the processor, each forward pass."""
    from beit_demo import images
    from beit_demo.inference import classify as classifier

    low = f"forward {reduced.precision}"
    timings: dict[str, list[float]] = {"decode": [], "processor": [], "forward fp32": [], low: []}
    for _ in range(rounds):
        elapsed, image = clock.time(
            lambda: images.load_image(big, max_pixels=max_pixels, min_size=2 * fp32.input_size)
        )
        timings["decode"].append(elapsed)
        elapsed, pixels = clock.time(lambda image=image: classifier.preprocess(fp32, [image]))
        timings["processor"].append(elapsed)
        timings["forward fp32"].append(clock.time(lambda pixels=pixels: classifier.forward(fp32, pixels))[0])
        timings[low].append(clock.time(lambda pixels=pixels: classifier.forward(reduced, pixels))[0])
    return {name: _median_ms(times) for name, times in timings.items()}


def _floor(stock_model: Any, fp32: Any, big: str, max_pixels: int, clock: QuietClock) -> dict[str, float]:
    """The forward pass's FLOPs, and the time they take at the best matrix-multiply rate measured here."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from beit_demo import images
    from beit_demo.inference import classify as classifier
    from beit_demo.models.optimize import prepack_linear_layers

    image = images.load_image(big, max_pixels=max_pixels, min_size=2 * fp32.input_size)
    pixels = classifier.preprocess(fp32, [image])
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        stock_model(pixel_values=pixels)
    flops = counter.get_total_flops()
    # The model's own widest layer (hidden -> 4 x hidden over 197 tokens), oneDNN-prepacked as our fp32 path runs it.
    hidden = stock_model.config.hidden_size
    layer = torch.nn.Sequential(torch.nn.Linear(hidden, 4 * hidden)).eval()
    prepack_linear_layers(layer)
    tokens = torch.randn(197, hidden)
    repeats = 10
    with torch.inference_mode():
        best = min(clock.time(lambda: [layer(tokens) for _ in range(repeats)])[0] for _ in range(5))
    rate = repeats * 2 * 197 * hidden * 4 * hidden / best
    return {"flops": flops, "flops_per_s": rate, "floor_ms": flops / rate * 1000}


# -- memory --------------------------------------------------------------------------------------------------------


def _rss_bytes() -> int:
    """Resident memory of this process (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def memory(args: dict[str, Any]) -> dict[str, Any]:
    """RSS with every catalog model loaded against their parameter bytes plus this process's idle RSS."""
    # Idle: everything the app imports to classify (torch, transformers' model classes, our inference code), no model.
    import torch  # noqa: F401
    from transformers import AutoImageProcessor, BeitForImageClassification, DeiTForImageClassification  # noqa: F401

    from beit_demo import images
    from beit_demo.inference import classify as classifier
    from beit_demo.models.registry import ModelRegistry

    image = images.load_image(args["image"], max_pixels=_max_pixels(), min_size=448)
    gc.collect()
    idle = _rss_bytes()
    registry = ModelRegistry(max_models=len(CATALOG), precision=args["precision"])
    parameter_bytes = {}
    for entry in CATALOG:
        with registry.use(entry.source) as loaded:
            classifier.classify(loaded, [image], top_k=TOP_K)  # memory in use includes what a forward pass keeps
            parameter_bytes[entry.key] = loaded.parameter_bytes
    gc.collect()
    loaded_rss = _rss_bytes()

    sources = [entry.source for entry in CATALOG]
    switches = []
    for index in range(args["switches"]):
        started = time.perf_counter()
        with registry.use(sources[index % len(sources)]):
            switches.append(time.perf_counter() - started)
    return {
        "idle_rss": idle,
        "loaded_rss": loaded_rss,
        "parameter_bytes": parameter_bytes,
        "loaded_keys": [entry.key for entry in CATALOG if entry.source in registry.loaded_sources()],
        "switch_ms": _median_ms(switches),
        "switch_max_ms": max(switches) * 1000,
    }


# -- HTTP ----------------------------------------------------------------------------------------------------------


def http(args: dict[str, Any]) -> dict[str, Any]:
    """Round trips through app.py and the do-nothing app, in-process classify(), and throughput, interleaved."""
    from beit_demo import images
    from beit_demo.inference import classify as classifier
    from beit_demo.models.loading import load_model

    work = Path(args["work"])
    env = {**os.environ, "BEIT_DEMO_PRECISION": "fp32"}
    with (
        serve(APP_COMMAND, env, work / "logs" / "app.log") as app,
        serve(NOOP_COMMAND, env, work / "logs" / "noop.log") as noop,
    ):
        clock = QuietClock(pids=[app.pid, noop.pid])
        loaded = load_model(get_entry(DEFAULT_MODEL_KEY).source, "fp32")
        max_pixels = _max_pixels()

        def in_process() -> None:
            image = images.load_image(args["image"], max_pixels=max_pixels, min_size=2 * loaded.input_size)
            classifier.classify(loaded, [image], top_k=TOP_K)

        with _clients(app.url, args["clients"], work) as app_clients, _clients(noop.url, 1, work) as noop_clients:
            calls = {
                "app": lambda: _predict(app_clients[0], args["image"]),
                "noop": lambda: _predict(noop_clients[0], args["image"]),
                "classify": in_process,
            }
            for call in calls.values():  # the first app call loads the model
                for _ in range(args["warmup"]):
                    call()
            seconds: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(args["http_rounds"]):
                for name, call in calls.items():
                    seconds[name].append(clock.time(call)[0])
            throughput = _throughput(app_clients, args, QuietClock(pids=[app.pid, noop.pid], attempts=2))
    return {
        "median_ms": {name: _median_ms(times) for name, times in seconds.items()},
        **throughput,
        "clock": clock.record(),
    }


@contextmanager
def _clients(url: str, count: int, work: Path):
    from gradio_client import Client

    clients = [Client(url, verbose=False, download_files=str(work / "downloads")) for _ in range(count)]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


def _predict(client: Any, image: str) -> Any:
    from gradio_client import handle_file

    return client.predict(handle_file(image), DEFAULT_MODEL_KEY, TOP_K, api_name="/classify")


def _throughput(clients: list[Any], args: dict[str, Any], clock: QuietClock) -> dict[str, Any]:
    """Requests per second from one client at a time and from every client at once, interleaved."""
    per_client = max(1, args["throughput_requests"] // len(clients))
    requests = per_client * len(clients)
    image = args["image"]

    def sequential() -> None:
        for _ in range(requests):
            _predict(clients[0], image)

    def concurrent() -> None:
        threads = [
            threading.Thread(target=lambda client=client: [_predict(client, image) for _ in range(per_client)])
            for client in clients
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    totals = {"sequential": 0.0, "concurrent": 0.0}
    for _ in range(args["throughput_rounds"]):
        totals["sequential"] += clock.time(sequential)[0]
        totals["concurrent"] += clock.time(concurrent)[0]
    done = requests * args["throughput_rounds"]
    return {
        "sequential_per_s": done / totals["sequential"],
        "concurrent_per_s": done / totals["concurrent"],
        "clients": len(clients),
        "throughput_clock": clock.record(),
    }


# -- faces ---------------------------------------------------------------------------------------------------------


FACE_MODEL = "facemask-deit"


def _face_mosaic(scene: Image.Image, boxes: list, count: int) -> Image.Image:
    """A photo with ``count`` faces in a grid, cut from ``scene`` around its detected ``boxes``."""
    from beit_demo.inference.faces import crop_box

    crops = [scene.crop(crop_box(box, scene.width, scene.height)).resize((200, 200)) for box in boxes]
    columns = max(1, round(count**0.5))
    rows = -(-count // columns)
    mosaic = Image.new("RGB", (columns * 300, rows * 300), "white")
    for index in range(count):
        mosaic.paste(crops[index % len(crops)], ((index % columns) * 300 + 50, (index // columns) * 300 + 50))
    return mosaic


def faces(args: dict[str, Any]) -> dict[str, Any]:
    """Find + classify faces against one plain classify of the same photo; detection alone; faces per second."""
    from beit_demo.catalog import get_entry
    from beit_demo.config import Settings
    from beit_demo.models.face_detector import shared_detector
    from beit_demo.service import DemoService

    clock = QuietClock()
    service = DemoService(Settings.from_env())
    scene_path = args["scene"]
    scene = Image.open(scene_path).convert("RGB")
    for _ in range(args["warmup"]):  # loads the model and the detector
        service.detect_faces(scene_path, FACE_MODEL)
        service.classify(scene_path, FACE_MODEL, 2)
    timings: dict[str, list[float]] = {"faces": [], "classify": []}
    for _ in range(args["photo_rounds"] * 5):
        timings["faces"].append(clock.time(lambda: service.detect_faces(scene_path, FACE_MODEL))[0])
        timings["classify"].append(clock.time(lambda: service.classify(scene_path, FACE_MODEL, 2))[0])
    detector = shared_detector()
    boxes = [face.box for face in detector.detect(scene)]
    big = scene.resize((4800, 2510), Image.Resampling.BICUBIC)  # 12.0 MP in the scene's own aspect
    big_path = Path(args["work"]) / "faces-12mp.jpg"
    big.save(big_path, quality=90)
    decoded = Image.open(big_path).convert("RGB")
    detect, whole = [], []
    for _ in range(args["photo_rounds"] * 5):
        detect.append(clock.time(lambda: detector.detect(decoded))[0])
        whole.append(clock.time(lambda: detector.detect(decoded, quarters=False))[0])
    faces_per_s = {}
    for count in (1, 4, 16):
        mosaic = _face_mosaic(scene, boxes, count)
        path = Path(args["work"]) / f"faces-{count}.png"
        mosaic.save(path)
        seconds = [clock.time(lambda path=path: service.detect_faces(str(path), FACE_MODEL))[0] for _ in range(3)]
        found = len(service.detect_faces(str(path), FACE_MODEL).faces)
        faces_per_s[f"{count} ({found} found)"] = found / statistics.median(seconds)
    return {
        "title": get_entry(FACE_MODEL).title,
        "scene_size": f"{scene.width} x {scene.height}",
        "faces_ms": _median_ms(timings["faces"]),
        "classify_ms": _median_ms(timings["classify"]),
        "detect_12mp_ms": _median_ms(detect),
        "detect_12mp_whole_ms": _median_ms(whole),
        "faces_per_s": faces_per_s,
        "clock": clock.record(),
    }


# -- explanations --------------------------------------------------------------------------------------------------


def explain(args: dict[str, Any]) -> dict[str, Any]:
    """Each explanation method against a plain classify of the same photo, on BEiT-base (21,841 classes)."""
    from beit_demo.catalog import get_entry
    from beit_demo.config import Settings
    from beit_demo.inference.heatmaps import METHODS
    from beit_demo.service import DemoService

    clock = QuietClock()
    service = DemoService(Settings.from_env())
    photo = args["photo"]
    calls = {"classify": lambda: service.classify(photo, DEFAULT_MODEL_KEY, TOP_K)}
    calls.update(
        {method: (lambda method=method: service.explain(photo, DEFAULT_MODEL_KEY, "", method)) for method in METHODS}
    )
    for call in calls.values():
        for _ in range(args["warmup"]):
            call()
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args["photo_rounds"] * 3):
        for name, call in calls.items():
            seconds[name].append(clock.time(call)[0])
    return {
        "title": get_entry(DEFAULT_MODEL_KEY).title,
        "classify_ms": _median_ms(seconds.pop("classify")),
        "explain_ms": {method: _median_ms(times) for method, times in seconds.items()},
        "clock": clock.record(),
    }


# -- adapters ------------------------------------------------------------------------------------------------------


def adapters(args: dict[str, Any]) -> dict[str, Any]:
    """The Fashion-MNIST adapter on a 12 MP product photo: decoded in full, and as the app decodes it."""
    from PIL import ImageOps

    from beit_demo import images
    from beit_demo.inference.adapters import fashion_mnist_look

    clock = QuietClock()
    garment = ImageOps.invert(Image.open(args["tile"]).convert("L")).resize((2400, 2400), Image.Resampling.BICUBIC)
    photo = Image.new("L", (4243, 2828), 238)
    photo.paste(garment, (1500, 300))
    path = Path(args["work"]) / "product-12mp.jpg"
    photo.convert("RGB").save(path, quality=90)
    full = images.load_image(path, max_pixels=_max_pixels())
    decoded = images.load_image(path, max_pixels=_max_pixels(), min_size=448)  # as the app does for a 224 px model
    rounds = args["photo_rounds"] * 10
    full_times = [clock.time(lambda: fashion_mnist_look(full))[0] for _ in range(rounds)]
    decoded_times = [clock.time(lambda: fashion_mnist_look(decoded))[0] for _ in range(rounds)]
    return {
        "full_ms": _median_ms(full_times),
        "decoded_ms": _median_ms(decoded_times),
        "decoded_size": f"{decoded.width} x {decoded.height}",
        "clock": clock.record(),
    }


# -- bulk: the classify command line (local and Ray) against one /classify call after another -----------------------


def _timed_cli(folder: Path, output: Path, engine: str, log: Path) -> float:
    import subprocess

    command = [sys.executable, "-m", "beit_demo", "classify", str(folder), "--model", DEFAULT_MODEL_KEY]
    command += ["--top-k", str(TOP_K), "--output", str(output), "--engine", engine]
    started = time.perf_counter()
    with log.open("a") as stream:
        subprocess.run(command, check=True, stdout=stream, stderr=subprocess.STDOUT)
    return time.perf_counter() - started


def bulk(args: dict[str, Any]) -> dict[str, Any]:
    """Images per second: the command line end to end (start-up and model load included), local and Ray, against
    the launched app answering one /classify after another; and, in one process, classify_files against classify."""
    from beit_demo.config import Settings
    from beit_demo.service import DemoService

    work = Path(args["work"])
    folder = work / "bulk-images"
    folder.mkdir()
    photos = list(args["photos"])
    images = [folder / f"{index:03d}-{Path(photos[index % len(photos)]).name}" for index in range(args["bulk_images"])]
    for index, image in enumerate(images):
        image.write_bytes(Path(photos[index % len(photos)]).read_bytes())
    count = len(images)
    seconds = {
        engine: _timed_cli(folder, work / f"bulk-{engine}.csv", engine, work / "logs" / f"bulk-{engine}.log")
        for engine in ("local", "ray")
    }
    service = DemoService(Settings.from_env())
    service.prepare(DEFAULT_MODEL_KEY)
    files = [(image.name, str(image)) for image in images]
    started = time.perf_counter()
    list(service.classify_files(files, DEFAULT_MODEL_KEY, TOP_K))
    batched = time.perf_counter() - started
    started = time.perf_counter()
    for image in images:
        service.classify(str(image), DEFAULT_MODEL_KEY, TOP_K)
    one_by_one = time.perf_counter() - started
    with (
        serve(APP_COMMAND, dict(os.environ), work / "logs" / "bulk-app.log") as app,
        _clients(app.url, 1, work) as (client,),
    ):
        _predict(client, str(images[0]))  # loads the model
        started = time.perf_counter()
        for image in images:
            _predict(client, str(image))
        http = time.perf_counter() - started
    return {
        "images": count,
        "per_s": {
            "cli local": count / seconds["local"],
            "cli ray": count / seconds["ray"],
            "http one at a time": count / http,
            "classify_files": count / batched,
            "classify one at a time": count / one_by_one,
        },
        "cpus": os.cpu_count(),
    }


# -- evaluate: models on labelled images, against the forward passes of the same work alone -------------------------

EVALUATED_MODELS = ("facemask-beit", "facemask-deit")  # BEiT-base and DeiT-base, both naming "Mask" and "No Mask"


def evaluate(args: dict[str, Any]) -> dict[str, Any]:
    """Evaluating the face-mask models on the photos in two class folders (decoding, batching and figures included),
    against their forward passes on the same images, decoded beforehand; and the figures alone for 10,000 rows."""
    from beit_demo.config import Settings
    from beit_demo.evaluation.labelled import read_folder
    from beit_demo.images import load_image
    from beit_demo.inference.classify import classify
    from beit_demo.service import DemoService

    work = Path(args["work"])
    photos = list(args["photos"])
    for index in range(args["bulk_images"]):
        folder = work / "evaluate-images" / ("Mask", "No Mask")[index % 2]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:03d}.jpg").write_bytes(Path(photos[index % len(photos)]).read_bytes())
    service = DemoService(Settings.from_env())
    labelled = read_folder(work / "evaluate-images")
    settings = service.settings
    pictures = [load_image(image.image, max_pixels=settings.max_pixels, min_size=448) for image in labelled.images]
    clock = QuietClock()

    def evaluation() -> None:
        run = service.evaluate(labelled, list(EVALUATED_MODELS), None, TOP_K)
        list(run.rows())
        run.report()

    def passes_alone() -> None:
        for key in EVALUATED_MODELS:
            with service.borrow(service.entry(key), None) as (loaded, _):
                for start in range(0, len(pictures), settings.max_batch):
                    classify(loaded, pictures[start : start + settings.max_batch], TOP_K)

    evaluation()  # loads both models, warms the caches
    seconds: dict[str, list[float]] = {"evaluation": [], "passes": []}
    for _ in range(args["throughput_rounds"]):
        seconds["evaluation"].append(clock.time(evaluation)[0])
        seconds["passes"].append(clock.time(passes_alone)[0])
    return {
        "images": len(labelled.images),
        "models": len(EVALUATED_MODELS),
        "evaluation_s": statistics.median(seconds["evaluation"]),
        "passes_s": statistics.median(seconds["passes"]),
        "figures_s": _figures_for_rows(10_000),
        "clock": clock.record(),
    }


def _figures_for_rows(count: int) -> float:
    """Seconds to compute the report of two models from ``count`` rows over 10 folders (random readings)."""
    import numpy as np

    from beit_demo.evaluation.labelled import LabelledImage, LabelledSet
    from beit_demo.service.evaluate import EvaluatedImage, EvaluationPlan, Reading, build_report

    rng = np.random.default_rng(0)
    folders = tuple(f"class {number}" for number in range(10))
    mapping = {folder: (folder,) for folder in folders}
    images = tuple(LabelledImage(f"{folders[n % 10]}/{n}.jpg", folders[n % 10], b"") for n in range(count))
    labelled = LabelledSet(images, folders)
    entries = (get_entry("facemask-beit"), get_entry("facemask-deit"))
    plan = EvaluationPlan(entries, {entry.key: mapping for entry in entries}, folders, TOP_K)
    rows = []
    for image in images:
        readings = {}
        for entry in plan.entries:
            shares = rng.dirichlet(np.ones(10))
            order = np.argsort(-shares)
            readings[entry.key] = Reading(
                folders[order[0]],
                float(shares[order[0]]),
                tuple(folders[index] for index in order[:TOP_K]),
                dict(zip(folders, shares.tolist(), strict=True)),
            )
        rows.append(EvaluatedImage(image.path, image.truth, readings))
    started = time.perf_counter()
    build_report(labelled, plan, rows, {entry.key: 1.0 for entry in plan.entries})
    return time.perf_counter() - started


# -- live: a camera stream of a scene with three faces, answered frame by frame ------------------------------------


def _pan_frames(scene_path: str, count: int = 40) -> list[Image.Image]:
    """640 x 480 frames of a slow pan over the scene (shown 600 px wide), back and forth."""
    scene = Image.open(scene_path).convert("RGB")
    shown = scene.resize((600, round(scene.height * 600 / scene.width)))
    frames = []
    for number in range(count):
        shift = round(20 * ((number % 20) / 10 - 1)) * (1 if number // 20 % 2 == 0 else -1)
        frame = Image.new("RGB", (640, 480), (90, 90, 90))
        frame.paste(shown, (20 + shift, (480 - shown.height) // 2))
        frames.append(frame)
    return frames


def live(args: dict[str, Any]) -> dict[str, Any]:
    """A stream as the page sends it (a frame every 0.1 s at most) of a pan over three faces: frames answered per
    second, the time until a new stream's faces are labelled, and the per-frame work besides classification (which
    runs beside the stream), in fp32 and int8 (full-size face-mask DeiT)."""
    import dataclasses

    import numpy as np

    from beit_demo.config import Settings
    from beit_demo.service import DemoService, LiveSession

    frames = [np.asarray(frame) for frame in _pan_frames(args["scene"])]  # as the browser's stream hands them over
    every = 0.1  # the Live tab's stream_every

    def stream(service: DemoService, session: LiveSession, seconds: float, until_labelled: bool = False):
        """Send frames every 0.1 s (or as soon as the last one is answered, if later); the answers and the time."""
        answers, started = [], time.perf_counter()
        while time.perf_counter() - started < seconds:
            tick = time.perf_counter()
            answers.append(service.live_frame(session, frames[len(answers) % len(frames)], "facemask-deit"))
            if until_labelled and all(face.scores for face in answers[-1].faces) and answers[-1].faces:
                break
            time.sleep(max(0.0, every - (time.perf_counter() - tick)))
        return answers, time.perf_counter() - started

    results = {}
    for precision in ("fp32", "int8"):
        service = DemoService(dataclasses.replace(Settings.from_env(), precision=precision))
        service.prepare("facemask-deit")
        stream(service, LiveSession(), 2.0)  # warm-up
        first = []
        for _ in range(3):  # a new stream: three new faces, labelled when the classification beside it ends
            answers, seconds = stream(service, LiveSession(), 10.0, until_labelled=True)
            assert len(answers[-1].faces) == 3 and all(face.scores for face in answers[-1].faces)
            first.append(seconds)
        answers, seconds = stream(service, LiveSession(), args["live_seconds"])
        other = [sum(value for stage, value in answer.seconds.items() if stage != "classify") for answer in answers]
        results[precision] = {
            "frames_per_s": len(answers) / seconds,
            "first_label_s": statistics.median(first),
            "other_ms": _median_ms(other),
            "classified_per_s": sum(answer.classified for answer in answers) / seconds,
        }
    return results


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "bulk": bulk,
    "live": live,
    "evaluate": evaluate,
    "prepare": prepare,
    "inference": inference,
    "memory": memory,
    "http": http,
    "faces": faces,
    "adapters": adapters,
    "explain": explain,
}


def main(argv: Sequence[str]) -> None:
    """Run the worker named ``argv[0]`` with the JSON arguments ``argv[1]``; write its result to ``argv[2]``."""
    name, payload, result_path = argv
    result = WORKERS[name](json.loads(payload))
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
