"""Command line: `python -m beit_demo download [KEY ...] [--all]` and `python -m beit_demo bench`."""

from __future__ import annotations

import argparse
import sys

from beit_demo.catalog import CATALOG, DEFAULT_MODEL_KEY, UnknownModelError, get_spec


def _download(keys: list[str], everything: bool) -> int:
    from beit_demo import hub

    specs = list(CATALOG) if everything else [get_spec(key) for key in (keys or [DEFAULT_MODEL_KEY])]
    failures = 0
    for spec in specs:
        try:
            fetched = hub.fetch(spec)
        except hub.ModelUnavailableError as err:
            print(f"FAILED {spec.key}: {err}", file=sys.stderr)
            failures += 1
            continue
        how = f"downloaded {fetched.bytes_downloaded / 1e6:.1f} MB" if fetched.downloaded else "already cached"
        print(f"ok {spec.key}: {how} -> {fetched.directory}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m beit_demo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    download = commands.add_parser("download", help="fetch models into the Hub cache ahead of time")
    download.add_argument("keys", nargs="*", metavar="KEY", help=f"catalog keys (default: {DEFAULT_MODEL_KEY})")
    download.add_argument("--all", action="store_true", help="every catalog model")
    bench = commands.add_parser("bench", help="measure speed and memory offline (see BENCHMARKS.md)")
    bench.add_argument("--smoke", action="store_true", help="tiny models, one iteration: checks the benchmark runs")
    bench.add_argument("--output", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)

    if args.command == "download":
        try:
            return _download(args.keys, args.all)
        except UnknownModelError as err:
            parser.error(str(err))
    from beit_demo.bench import run_benchmark

    return run_benchmark(smoke=args.smoke, output=args.output)


if __name__ == "__main__":
    sys.exit(main())
