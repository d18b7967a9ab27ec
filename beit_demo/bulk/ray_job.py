"""The Ray Data engine: the same per-batch classify as the local engine, inside Ray Data, on one machine or a cluster.

Ray Data reads the files as bytes (``read_binary_files``), hands them in batches to a pool of actors that each hold
one loaded model (``map_batches``), and streams the rows back, in order, to the driver, which writes them with the
same writer as the local engine. Each actor runs `DemoService.classify_files`, so the bytes are decoded by the
demo's own safe loader inside the workers, and the results equal the local engine's.

Ray is an optional extra (``requirements-ray.txt``), imported only here and only when this engine is asked for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import beit_demo
from beit_demo.evaluation.labelled import LabelledSet
from beit_demo.service import FileResult
from beit_demo.service.evaluate import EvaluatedImage, EvaluationPlan, Reading

# Variables the workers need to see as the driver does: where the Hub is and the demo's settings everywhere; on a
# machine of one's own also where the Hub cache is (a cluster's nodes have caches of their own).
_SHARED_VARIABLES = ("HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_XET", "HF_HUB_ETAG_TIMEOUT")
_LOCAL_VARIABLES = ("HF_HOME", "HF_HUB_CACHE")
# A forward pass of a base-sized model uses 4 cores well; more actors of fewer threads each hold more model copies.
CPUS_PER_ACTOR = 4


class _Classifier:
    """A Ray Data actor: one service with one model, classifying the batches it is handed."""

    def __init__(self, model: str, top_k: int, threads: int):
        import torch

        from beit_demo.config import Settings
        from beit_demo.service import DemoService

        torch.set_num_threads(threads)  # the actor's share of the machine, not every core
        self.service = DemoService(Settings.from_env())
        self.model, self.top_k = model, top_k
        self.service.prepare(model)  # load once, before the first batch

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        files = [(str(path), bytes(data)) for path, data in zip(batch["path"], batch["bytes"], strict=True)]
        results = list(self.service.classify_files(files, self.model, self.top_k))
        return {
            "path": [result.name for result in results],
            "scores": [json.dumps(list(result.scores.items())) for result in results],
            "error": [result.error for result in results],
        }


class _Reader:
    """A Ray Data actor for an evaluation: one service with one model, reading the batches it is handed."""

    def __init__(self, model: str, mapping: dict[str, list[str]], top_k: int, threads: int):
        import torch

        from beit_demo.config import Settings
        from beit_demo.service import DemoService

        torch.set_num_threads(threads)
        self.service = DemoService(Settings.from_env())
        self.model, self.top_k = model, top_k
        self.mapping = {folder: tuple(labels) for folder, labels in mapping.items()}
        self.service.prepare(model)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from beit_demo.service.evaluate import read_files

        readings, seconds = read_files(
            self.service, self.model, [bytes(data) for data in batch["bytes"]], self.mapping, self.top_k
        )
        return {
            "path": [str(path) for path in batch["path"]],
            "reading": [json.dumps(dataclasses.asdict(reading)) for reading in readings],
            "seconds": [seconds / len(readings)] * len(readings),
        }


def _runtime_env(local: bool) -> dict[str, Any]:
    names = (*_SHARED_VARIABLES, *(_LOCAL_VARIABLES if local else ()))
    variables = {name: value for name, value in os.environ.items() if name in names or name.startswith("BEIT_DEMO_")}
    # The package travels with the job, so a cluster's workers run this very code (they need its requirements).
    return {"env_vars": variables, "py_modules": [str(Path(beit_demo.__file__).parent)]}


@contextlib.contextmanager
def _ray_session(address: str | None):
    """A Ray for the job: joined when ``address`` (or RAY_ADDRESS) names one, else started here; shut down after."""
    import ray

    local = address is None and not os.environ.get("RAY_ADDRESS")
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address,
            runtime_env=_runtime_env(local),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # rows come back in the order of the files
        context.enable_progress_bars = False  # the command line draws its own
        yield ray
    finally:
        if started_here:
            ray.shutdown()


def _pool(ray, actors: int | None) -> tuple[int, int]:
    """(actors, torch threads each): one actor per CPUS_PER_ACTOR CPUs unless told, the CPUs shared among them."""
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    pool = actors or max(1, cpus // CPUS_PER_ACTOR)
    return pool, max(1, cpus // pool)


def _mapped(ray, paths: list[str], actor: type, batch_size: int, actors: int | None, **arguments):
    """Ray Data reading ``paths`` as bytes and handing them, in batches, to a pool of ``actor``."""
    pool, threads = _pool(ray, actors)
    # Reading files is waiting on disks: its tasks ask for no CPU, so actors holding every CPU never starve them.
    files_read = ray.data.read_binary_files(paths, include_paths=True, num_cpus=0)
    return files_read.map_batches(
        actor,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=pool),
        num_cpus=threads,
        fn_constructor_kwargs={**arguments, "threads": threads},
    )


def classify_with_ray(
    files: Sequence[Path],
    model: str,
    top_k: int,
    batch_size: int = 8,
    address: str | None = None,
    actors: int | None = None,
) -> Iterator[FileResult]:
    """Classify ``files`` with Ray Data; yields one result per file, in the order given.

    Args:
        address: a Ray cluster to join (``ray://host:10001``, ``auto``, or the RAY_ADDRESS variable); None starts
            a Ray on this machine for the job.
        actors: actors in the pool, each with a copy of the model and an equal share of the CPUs as torch threads;
            default: one per CPUS_PER_ACTOR CPUs (one actor with every core on a small machine, like the local
            engine).
    """
    names = {str(path.resolve()): str(path) for path in files}
    with _ray_session(address) as ray:
        dataset = _mapped(ray, list(names), _Classifier, batch_size, actors, model=model, top_k=top_k)
        for row in dataset.iter_rows():
            path = str(row["path"])
            name = names.get(path, names.get(str(Path(path).resolve()), path))
            yield FileResult(name, dict(json.loads(row["scores"])), str(row["error"]))


def evaluate_with_ray(
    labelled: LabelledSet,
    plan: EvaluationPlan,
    seconds: dict[str, float],
    batch_size: int = 8,
    address: str | None = None,
    actors: int | None = None,
) -> Iterator[EvaluatedImage]:
    """An evaluation's rows through Ray Data: each model's readings from a pool of actors, the rows put together here.

    The figures are then computed on the driver from these rows, as for the local engine (`build_report`).
    ``seconds`` receives each model's time in its forward passes, summed over the actors.
    """
    paths = [str(Path(image.image).resolve()) for image in labelled.images]
    readings: dict[str, dict[str, Reading]] = {}
    with _ray_session(address) as ray:
        for entry in plan.entries:
            mapping = {folder: list(labels) for folder, labels in plan.mapping[entry.key].items()}
            dataset = _mapped(
                ray, paths, _Reader, batch_size, actors, model=entry.key, mapping=mapping, top_k=plan.top_k
            )
            for row in dataset.iter_rows():
                reading = json.loads(row["reading"])
                reading["top_labels"] = tuple(reading["top_labels"])
                readings.setdefault(str(row["path"]), {})[entry.key] = Reading(**reading)
                seconds[entry.key] = seconds.get(entry.key, 0.0) + float(row["seconds"])
    for image, path in zip(labelled.images, paths, strict=True):
        by_model = readings.get(path, {})
        error = next((reading.error for reading in by_model.values() if reading.error), "")
        kept = {} if error else by_model
        yield EvaluatedImage(image.path, image.truth, kept, error)
