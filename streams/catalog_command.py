"""The ``stackmeter catalog`` commands: check a catalog, print its schema, preview it.

``check`` lists every problem of one or more catalog files, one line each with
the file, rule id and reason, and exits 1 when there is any. ``preview``
re-rates the usage stored in ClickHouse with a candidate catalog and prints
the cost difference per project and product.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from typing import Any

from stackmeter.config import load_config
from stackmeter.storage import open_storage
from stackmeter.streams.catalog import CatalogError, load_catalog
from stackmeter.streams.catalog_preview import preview_catalog, render_csv, render_table
from stackmeter.streams.catalog_schema import schema_text

_DESCRIPTION = """\
Work with product catalogs (YAML, see catalog/README.md): check them the way
the worker does at start, print the JSON Schema editors can validate against,
or preview what a candidate catalog would charge for usage already stored.
"""


def register(subparsers: Any) -> None:
    """Add ``catalog check``, ``catalog schema`` and ``catalog preview``."""
    catalog = subparsers.add_parser(
        "catalog",
        help="check, describe or preview a product catalog",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    catalog.set_defaults(run=lambda _args: _usage(catalog))
    commands = catalog.add_subparsers(title="catalog commands", metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="list every problem of catalog files",
        description="Load each file as the worker would and print every problem "
        "(file, rule id, reason), not only the first. Exit code 1 when any.",
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(run=run_check)

    schema = commands.add_parser(
        "schema",
        help="print the catalog's JSON Schema",
        description="Print the JSON Schema of the catalog format "
        "(catalog/catalog.schema.json holds the same text).",
    )
    schema.set_defaults(run=run_schema)

    preview = commands.add_parser(
        "preview",
        help="re-rate stored usage with a candidate catalog and show the difference",
        description="Re-rate the usage stored in ClickHouse (sink.clickhouse, "
        "sink.database) between --from and --to with FILE and print the cost per "
        "project and product against the stored charges, or against --baseline.",
    )
    preview.add_argument("file", metavar="FILE", help="the candidate catalog")
    preview.add_argument(
        "--from",
        dest="start",
        required=True,
        type=_instant,
        metavar="WHEN",
        help="first hour, inclusive: YYYY-MM-DD or an ISO date-time with offset",
    )
    preview.add_argument(
        "--to",
        dest="end",
        required=True,
        type=_instant,
        metavar="WHEN",
        help="end, exclusive: YYYY-MM-DD or an ISO date-time with offset",
    )
    preview.add_argument("--project", metavar="ID", help="only this project id")
    preview.add_argument(
        "--baseline",
        metavar="FILE",
        help="compare with this catalog re-rating the same usage instead of "
        "the stored charges",
    )
    preview.add_argument(
        "--format", choices=("table", "csv"), default="table", help="default: table"
    )
    preview.set_defaults(run=run_preview)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _instant(text: str) -> datetime:
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected YYYY-MM-DD or an ISO date-time, got {text!r}"
        ) from None
    if instant.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. Z")
    return instant.astimezone(UTC)


def run_check(args: argparse.Namespace) -> int:
    """Print every problem of every file; 1 when any file has one."""
    failed = False
    for path in args.files:
        try:
            catalog = load_catalog(path)
        except CatalogError as exc:
            failed = True
            for problem in exc.problems:
                print(problem)
            print(f"{path}: {len(exc.problems)} problems", file=sys.stderr)
            continue
        products = {rule.product_id for rule in catalog.rules}
        print(
            f"{path}: ok, version {catalog.version}, {len(catalog.rules)} rules, "
            f"{len(products)} products"
        )
    return 1 if failed else 0


def run_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return 0


def run_preview(args: argparse.Namespace) -> int:
    """Print the candidate's cost difference per project and product."""
    if args.end <= args.start:
        print("stackmeter catalog preview: --to must be after --from", file=sys.stderr)
        return 2
    config = load_config(args.config)
    config.validate("sink")
    candidate = load_catalog(args.file)
    baseline = load_catalog(args.baseline) if args.baseline else None
    storage = open_storage(config.sink.clickhouse)
    try:
        preview = preview_catalog(
            storage,
            config.sink.database,
            candidate,
            args.start,
            args.end,
            project_id=args.project,
            baseline=baseline,
        )
    finally:
        storage.close()
    render = render_csv if args.format == "csv" else render_table
    sys.stdout.write(render(preview))
    return 0
