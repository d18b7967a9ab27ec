"""Command line: `python -m beit_demo download [KEY ...] [--all]` fetches models ahead of time."""

from __future__ import annotations

import argparse
import sys

from beit_demo import hub
from beit_demo.catalog import CATALOG, DEFAULT_MODEL_KEY, CatalogEntry, get_entry
from beit_demo.errors import DemoError, UnknownModelError


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


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit code (2 for bad usage, as argparse does)."""
    parser = argparse.ArgumentParser(prog="python -m beit_demo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    download = commands.add_parser("download", help="fetch models into the Hub cache ahead of time")
    download.add_argument("keys", nargs="*", metavar="KEY", help=f"catalog keys (default: {DEFAULT_MODEL_KEY})")
    download.add_argument("--all", action="store_true", help="every catalog model")
    args = parser.parse_args(argv)

    try:
        entries = list(CATALOG) if args.all else [get_entry(key) for key in (args.keys or [DEFAULT_MODEL_KEY])]
    except UnknownModelError as err:
        parser.error(str(err))
    return _download(entries)
