"""`python -m beit_demo evaluate DIR --model M [--model M ...]`: models on a folder of class folders, a report.

    python -m beit_demo evaluate DIR --model M [--model M ...] [--map FOLDER=LABEL[|LABEL...]]... [--top-k K]
        [--output report.json] [--engine local|ray]

A progress bar on stderr, the figures as a table on stdout, the whole report (the rows too) as JSON with --output.
Exit codes: 0 when every image was evaluated, 1 when some could not be (see the rows' errors) or a model could not be
fetched, 2 on bad usage: an unknown model, fewer than two class folders, a model with no label for any folder, a
--map that names a folder without images or a label no chosen model has.
"""

from __future__ import annotations

import argparse
import json
import sys

from beit_demo.errors import DemoError, ModelLoadError, ModelUnavailableError

ENGINES = ("local", "ray")


def add_parser(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("evaluate", help="evaluate models on a folder of class folders (one per class)")
    evaluate.add_argument("folder", metavar="DIR", help="a folder holding one folder of images per class")
    evaluate.add_argument(
        "--model", action="append", required=True, help="a catalog key or Hub id; repeat for more models (at most 4)"
    )
    evaluate.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FOLDER=LABEL[|LABEL...]",
        help="the labels a folder stands for (default: the labels named like the folder); repeat per folder",
    )
    evaluate.add_argument("--top-k", type=int, default=5, help="for the top-k accuracy (1-20, default 5)")
    evaluate.add_argument("--output", help="write the whole report as JSON to this file")
    evaluate.add_argument("--engine", choices=ENGINES, default="local", help="local (default) or ray (Ray Data)")
    evaluate.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    evaluate.add_argument("--ray-address", help="a Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    evaluate.add_argument("--ray-actors", type=int, help="Ray actors per model (default: one per 4 CPUs)")


def run(parser: argparse.ArgumentParser, args: argparse.Namespace, service) -> int:  # a DemoService
    """Evaluate as ``args`` say; returns the exit code (bad usage exits 2 through ``parser.error``)."""
    from tqdm import tqdm

    from beit_demo.evaluation.labelled import read_folder
    from beit_demo.evaluation.mapping import parse_map_options
    from beit_demo.evaluation.summary import FIGURE_HEADERS, coverage_lines, figure_rows, pair_sentence, text_table
    from beit_demo.service.evaluate import build_report

    if args.output is not None and not args.output.endswith(".json"):
        parser.error(f"--output must end in .json, got {args.output!r}.")
    try:
        labelled = read_folder(args.folder)
        by_hand = parse_map_options(args.map)
        evaluation = service.evaluate(labelled, args.model, by_hand, args.top_k)
    except (ModelUnavailableError, ModelLoadError) as err:  # the model exists but could not be had: not usage
        print(f"error: {err}", file=sys.stderr)
        return 1
    except DemoError as err:
        parser.error(str(err))
    if labelled.skipped_top_level or labelled.skipped_not_images:
        print(
            f"Skipping {labelled.skipped_top_level} files lying directly in {args.folder} (not in a class folder) "
            f"and {labelled.skipped_not_images} files that are not images (by their content).",
            file=sys.stderr,
        )
    if args.engine == "ray":
        from beit_demo.bulk.ray_job import evaluate_with_ray

        seconds: dict[str, float] = {}
        rows = evaluate_with_ray(
            labelled, evaluation.plan, seconds, args.batch_size, args.ray_address, args.ray_actors
        )
    else:
        rows, seconds = evaluation.rows(), evaluation.seconds
    progress = tqdm(rows, total=len(labelled.images), unit="image", file=sys.stderr, desc="evaluating")
    done = list(progress)
    report = build_report(labelled, evaluation.plan, done, seconds).data
    print(text_table(FIGURE_HEADERS, figure_rows(report)))
    for pair in report["pairs"]:
        print(pair_sentence(pair))
    for line in coverage_lines(report):
        print(line)
    if report["suspect_labels"]:
        print("Likely filed in the wrong folder, most suspect first:", *report["suspect_labels"][:10], sep="\n  ")
    failed = [row for row in report["rows"] if row["error"]]
    if failed:
        print(f"{len(failed)} of {len(done)} images could not be evaluated (see the rows' errors).", file=sys.stderr)
    if args.output is not None:
        with open(args.output, "w", encoding="utf-8") as stream:
            json.dump(report, stream, indent=1)
    return 1 if failed else 0
