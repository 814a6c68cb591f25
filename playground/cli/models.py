"""The server and the models: `serve`, `prepare` (write the converted caches) and `catalog`."""

from __future__ import annotations

import argparse
import json
import sys

from playground.cli.common import CliError, add_common, catalog
from playground.config import settings_from_args


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    """`serve` and its flags (the first command in the help)."""
    serve = sub.add_parser("serve", help="serve the web app")
    add_common(serve)
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 7860)")
    serve.add_argument("--model", action="append", help="extra model: id, .gguf path, directory or hub id")
    serve.add_argument("--db", help="SQLite file of saved runs (env PLAYGROUND_DB)")
    serve.add_argument("--auth", help="user:password: put the page behind a login (env PLAYGROUND_AUTH)")
    serve.add_argument("--corpus", help="folder of documents for local search (env PLAYGROUND_CORPUS)")
    serve.add_argument("--shared-history", action="store_true",
                       help="every user sees (and may delete) every saved run "
                       "(env PLAYGROUND_SHARED_HISTORY=1)")
    serve.set_defaults(func=cmd_serve)


def add_model_parsers(sub: argparse._SubParsersAction) -> None:
    """`prepare` and `catalog` (after the other commands in the help, as they always were)."""
    prepare = sub.add_parser("prepare", help="assemble bundled models and write their converted caches")
    add_common(prepare)
    prepare.set_defaults(func=cmd_prepare)

    listing = sub.add_parser("catalog", help="list the models")
    add_common(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_catalog)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the page until interrupted; a bad catalog or a taken port is bad input (exit 2)."""
    settings = settings_from_args(args)
    settings.models = settings.models + list(args.model or [])
    if args.shared_history:
        settings.shared_history = True
    catalog(settings, [])  # fail early, before the server starts, on a bad catalog
    from playground.ui.app import ServeError, launch

    try:
        launch(settings)  # prints "serving on ..." once the server answers; returns when it stops
    except ServeError as exc:  # e.g. the port is taken: one line naming --port, no traceback
        raise CliError(str(exc)) from exc
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Assemble the bundled GGUF files and write their converted caches, so the first run is fast."""
    from playground.backends.base import BackendError
    from playground.backends.pool import ModelPool
    from playground.catalog import BUNDLED

    settings = settings_from_args(args)
    pool = ModelPool(settings.data_dir, settings.device)
    for spec in BUNDLED:
        try:
            backend = pool.get(spec, progress=lambda msg, s=spec: print(f"{s.id}: {msg}", file=sys.stderr))
        except BackendError as exc:
            raise CliError(str(exc)) from exc
        how = "from converted cache" if backend.loaded_from_cache else "converted and cached"
        print(f"{spec.id}: ready ({how}, {backend.load_s:.1f} s)")
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    """The models of the catalog, one a line (or --json), with the key variable a hosted one still needs."""
    specs = [s.to_dict() for s in catalog(settings_from_args(args), []).specs.values()]
    if args.json:
        print(json.dumps(specs, indent=2))
    else:
        for spec in specs:
            state = "" if spec["available"] else f"  (set {spec['api_key_env']} to use it)"
            print(f"{spec['id']:<24} {spec['source']:<9} {spec['name']}  [{spec['location']}]{state}")
    return 0
