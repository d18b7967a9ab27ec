"""Command line: `python -m beit_demo download` fetches models ahead of time; `python -m beit_demo classify` labels
files and folders of images; `python -m beit_demo evaluate` measures models on class folders (`cli_evaluate`).

    python -m beit_demo download [MODEL ...] [--all]
    python -m beit_demo classify PATH [PATH ...] --model M [--top-k K] [--output FILE.csv|.jsonl] [--engine local|ray]
    python -m beit_demo evaluate DIR --model M [--model M ...] [--map FOLDER=LABEL[|LABEL...]]... [--output F.json]

MODEL is a catalog key or a Hub id (owner/name[@revision]). Exit codes: 0 when everything worked, 1 when some
file or model failed, 2 on bad usage (an unknown model, a path that does not exist, an output of another kind).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from beit_demo import cli_evaluate, hub
from beit_demo.catalog import CATALOG, DEFAULT_MODEL_KEY, CatalogEntry
from beit_demo.errors import DemoError, InvalidRequestError, UnknownModelError

OUTPUT_KINDS = (".csv", ".jsonl")
ENGINES = ("local", "ray")


def _download(entries: list[CatalogEntry]) -> int:
    failures = 0
    for entry in entries:
        try:
            fetched = hub.fetch(entry.source)
        except DemoError as err:
            print(f"FAILED {entry.key}: {err}", file=sys.stderr)
            failures += 1
            continue
        how = f"downloaded {fetched.bytes_downloaded / 1e6:.1f} MB" if fetched.downloaded else "already cached"
        print(f"ok {entry.key}: {how} -> {fetched.directory}")
    return 1 if failures else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m beit_demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    download = commands.add_parser("download", help="fetch models into the Hub cache ahead of time")
    download.add_argument(
        "keys", nargs="*", metavar="MODEL", help=f"catalog keys or Hub ids (default: {DEFAULT_MODEL_KEY})"
    )
    download.add_argument("--all", action="store_true", help="every catalog model")

    classify = commands.add_parser("classify", help="classify image files and folders (recursed) with one model")
    classify.add_argument("paths", nargs="+", metavar="PATH", help="image files, or folders to search for images")
    classify.add_argument("--model", required=True, help="a catalog key or a Hub id (owner/name[@revision])")
    classify.add_argument("--top-k", type=int, default=5, help="classes per image (1-20, default 5)")
    classify.add_argument("--output", type=Path, help="FILE.csv or FILE.jsonl (default: CSV on stdout)")
    classify.add_argument("--engine", choices=ENGINES, default="local", help="local (default) or ray (Ray Data)")
    classify.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    classify.add_argument("--ray-address", help="a Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    classify.add_argument("--ray-actors", type=int, help="Ray actors, each with the model (default: one per 4 CPUs)")
    cli_evaluate.add_parser(commands)
    return parser


def _service(batch_size: int = 8):  # a DemoService, imported here to keep `download` light
    from dataclasses import replace

    from beit_demo.config import Settings
    from beit_demo.service import DemoService

    return DemoService(replace(Settings.from_env(), max_batch=batch_size))


def _entry(parser: argparse.ArgumentParser, service, name: str) -> CatalogEntry:  # a DemoService
    """The model ``name`` names (a typed Hub id checked and resolved); exits 2 when it names none, 1 when it names
    a Hub model this demo will not load (not a usage error)."""
    try:
        return service.entry(name)
    except (UnknownModelError, InvalidRequestError) as err:
        parser.error(str(err))
    except DemoError as err:
        print(f"error: {name}: {err}", file=sys.stderr)
        sys.exit(1)


def _entries_to_download(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[CatalogEntry]:
    if args.all:
        return list(CATALOG)
    service = _service()
    return [_entry(parser, service, name) for name in args.keys or [DEFAULT_MODEL_KEY]]


@contextlib.contextmanager
def _opened_output(output: Path | None) -> Iterator:
    if output is None:
        yield sys.stdout
        return
    with output.open("w", encoding="utf-8", newline="") as stream:
        yield stream


def _classify(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from beit_demo.bulk.files import find_images
    from beit_demo.bulk.results import write_csv, write_jsonl
    from beit_demo.service import MAX_TOP_K

    if args.output is not None and args.output.suffix.lower() not in OUTPUT_KINDS:
        parser.error(f"--output must end in {' or '.join(OUTPUT_KINDS)}, got {str(args.output)!r}.")
    if not 1 <= args.top_k <= MAX_TOP_K:
        parser.error(f"--top-k must be from 1 to {MAX_TOP_K}, got {args.top_k}.")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1.")
    found = find_images(args.paths)
    if found.missing:
        parser.error(f"no such file or folder: {', '.join(found.missing)}")
    if not found.files:
        parser.error(f"no images in {', '.join(args.paths)} ({found.skipped} files that are not images).")
    service = _service(args.batch_size)
    entry = _entry(parser, service, args.model)  # before any file is read
    if found.skipped:
        print(f"Skipping {found.skipped} files that are not images (by their content).", file=sys.stderr)

    if args.engine == "ray":
        from beit_demo.bulk.ray_job import classify_with_ray

        results = classify_with_ray(
            found.files, entry.key, args.top_k, args.batch_size, args.ray_address, args.ray_actors
        )
    else:
        results = service.classify_files([(str(path), str(path)) for path in found.files], entry.key, args.top_k)
    failed = 0

    def counted(results):  # FileResults in, the same out
        nonlocal failed
        for result in tqdm(results, total=len(found.files), unit="image", file=sys.stderr, desc=entry.key):
            failed += bool(result.error)
            yield result

    write = write_jsonl if args.output is not None and args.output.suffix.lower() == ".jsonl" else write_csv
    try:
        with _opened_output(args.output) as stream:
            write(counted(results), stream)
    except DemoError as err:  # the model could not be fetched or loaded: no file was classified
        print(f"error: {err}", file=sys.stderr)
        return 1
    if failed:
        print(f"{failed} of {len(found.files)} files could not be classified (see the error column).", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit code (2 for bad usage, as argparse does)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "classify":
        return _classify(parser, args)
    if args.command == "evaluate":
        if args.batch_size < 1:
            parser.error("--batch-size must be at least 1.")
        return cli_evaluate.run(parser, args, _service(args.batch_size))
    return _download(_entries_to_download(parser, args))
