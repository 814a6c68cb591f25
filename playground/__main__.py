"""Command line: serve | compare | tokenize | sessions | batch | catalog | prepare.

Exit status: 0 on success, 2 on bad input (with a message on stderr), 1 when
every model of a `compare` failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from playground.config import Settings, parse_auth
from playground.controls import strip_controls
from playground.record import GenerationParams


class CliError(Exception):
    """Bad input: printed as `playground: error: ...`, exit status 2."""


def terminal_safe(text: str) -> str:
    """Text from a saved record or a model, fit for a terminal: no control characters but tab and newline
    (playground/controls.py: escape sequences in saved text never reach the terminal)."""
    return strip_controls(text)


def _settings(args: argparse.Namespace) -> Settings:
    try:
        settings = Settings.from_env()
    except ValueError as exc:  # a malformed environment variable
        raise CliError(str(exc)) from exc
    if getattr(args, "data_dir", None):
        settings.data_dir = Path(args.data_dir)
    if getattr(args, "catalog", None):
        settings.catalog_file = Path(args.catalog)
    if getattr(args, "host", None):
        settings.host = args.host
    if getattr(args, "port", None) is not None:
        settings.port = args.port
    if getattr(args, "device", None):
        settings.device = args.device
    if getattr(args, "db", None):
        settings.db_path = Path(args.db)
    if getattr(args, "corpus", None):
        settings.corpus_dir = Path(args.corpus)
    if getattr(args, "auth", None):
        try:
            settings.auth = parse_auth(args.auth)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
    return settings


def _catalog(settings: Settings, extra: list[str]):  # noqa: ANN202 - avoid importing at module load
    from playground.catalog import Catalog, CatalogError

    try:
        return Catalog.build(settings.catalog_file, settings.models + extra)
    except CatalogError as exc:
        raise CliError(str(exc)) from exc


def _catalog_with(settings: Settings, models: list[str] | None):  # noqa: ANN202
    """The catalog, after checking that every --model names something that can be found."""
    if not models:
        raise CliError("give at least one --model (see `python -m playground catalog`)")
    catalog = _catalog(settings, [])
    for ref in models:
        try:
            catalog.get(ref)
        except ValueError as exc:  # CatalogError
            raise CliError(str(exc)) from exc
    return catalog


def cmd_catalog(args: argparse.Namespace) -> int:
    settings = _settings(args)
    catalog = _catalog(settings, [])
    specs = [s.to_dict() for s in catalog.specs.values()]
    if args.json:
        print(json.dumps(specs, indent=2))
    else:
        for spec in specs:
            state = "" if spec["available"] else f"  (set {spec['api_key_env']} to use it)"
            print(f"{spec['id']:<24} {spec['source']:<9} {spec['name']}  [{spec['location']}]{state}")
    return 0


def _text_arg(value: str, what: str) -> str:
    """A prompt or system text from argv or stdin, invalid UTF-8 replaced by U+FFFD (with a notice)."""
    from playground.params import replace_invalid

    text, replaced = replace_invalid(value)
    if replaced:
        print(f"playground: the {what} held invalid UTF-8; replaced with U+FFFD (\ufffd)", file=sys.stderr)
    return text


def _read_stdin() -> str:
    return sys.stdin.buffer.read().decode("utf-8", "surrogateescape")


def cmd_compare(args: argparse.Namespace) -> int:
    from playground.engine import ColumnRequest, RequestError, RunRequest
    from playground.params import validate_params
    from playground.service import RunService, build_engine

    settings = _settings(args)
    if args.continue_id:
        if args.model or args.system is not None:
            raise CliError("--continue keeps the saved run's models and system prompts: "
                           "leave out --model and --system")
    else:
        _catalog_with(settings, args.model)
    params = GenerationParams(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
        stop=[_text_arg(s, "stop string") for s in args.stop or []],
        timeout_s=args.timeout,
    )
    problems = validate_params(params)
    if problems:
        raise CliError("; ".join(problems))
    prompt = _text_arg(_read_stdin() if args.prompt == "-" else args.prompt, "prompt")
    if args.continue_id:
        request = _follow_up(settings, args.continue_id, prompt)
    else:
        request = RunRequest(
            prompt=prompt,
            system_prompt=_text_arg(args.system or "", "system prompt"),
            columns=[ColumnRequest(m, params) for m in args.model],
            specials_as_text=args.specials_as_text,
            capture_attention=not args.no_attention,
        )
    options = None
    if args.search != "none":
        from playground.grounding.providers import SearchError
        from playground.grounding.snapshot import SearchOptions

        options = SearchOptions(args.search, args.sources, args.fetch, settings.corpus_dir,
                                settings.corpus_index, tuple(settings.fetch_allow),
                                region=settings.search_region if args.region is None else args.region,
                                safesearch=args.safesearch or settings.search_safesearch,
                                timelimit=args.timelimit or settings.search_timelimit)
        try:
            options.validate()  # a bad flag or environment value is bad input, before any model loads
        except SearchError as exc:
            raise CliError(str(exc)) from exc
    from playground.grounding.snapshot import default_providers

    service = RunService(settings, engine=build_engine(settings, web=False), providers=default_providers())
    notice = service.prepare(request, options)
    if notice:
        print(f"playground: {notice}", file=sys.stderr)
    try:
        live = service.start(request, key="cli", owner="cli", search_notice=notice)
    except RequestError as exc:
        raise CliError(str(exc)) from exc
    streamed = len(request.columns) == 1 and not args.json
    try:
        for event in live.events:
            if streamed and event.kind == "token":
                print(terminal_safe(event.delta), end="", flush=True)
    finally:
        outcome = service.finish(live, save=not args.no_save)
    run = outcome.run
    if outcome.save_error:
        print(f"playground: {outcome.save_error}", file=sys.stderr)
    saved_id = outcome.saved_id or None
    if args.json:
        print(json.dumps({"saved_id": saved_id, **run.to_dict()}, indent=2, ensure_ascii=False))
    else:
        _print_human(run, streamed=streamed)
        if saved_id:
            print(f"saved as {saved_id} (python -m playground sessions show {saved_id})", file=sys.stderr)
    return 0 if any(not m.error for m in run.models) else 1


def _follow_up(settings: Settings, run_id: str, prompt: str):  # noqa: ANN202 - a RunRequest
    """The next turn of a saved run's conversation: each column continues its own, with its model,
    parameters and system prompt (the generation flags apply to new runs only)."""
    from playground.sessions.rerun import follow_up_from
    from playground.sessions.store import SessionError, SessionStore

    try:
        parent = SessionStore(settings.database).get(run_id)
    except (SessionError, KeyError) as exc:
        raise CliError(f"cannot continue {run_id!r}: {exc}") from exc
    _catalog_with(settings, [m.identity.reference or m.identity.catalog_id for m in parent.models])
    return follow_up_from(parent, prompt)


def _print_human(run, streamed: bool) -> None:  # noqa: ANN001
    """Each column's answer and figures; every text goes through terminal_safe (it may come from a file)."""
    for model in run.models:
        m = model.metrics
        if not streamed:
            print(f"\n=== [{model.column}] {terminal_safe(model.identity.catalog_id)} ===")
            print(terminal_safe(model.text))
        else:
            print()
        if model.error:
            print(f"error: {terminal_safe(model.error)}", file=sys.stderr)
        print(
            f"-- {m.prompt_tokens} prompt tokens, {m.output_tokens} output tokens, "
            f"ttft {m.ttft_s:.2f} s, {m.decode_tok_s:.1f} tok/s, {terminal_safe(model.finish_reason)}",
            file=sys.stderr,
        )


def cmd_tokenize(args: argparse.Namespace) -> int:
    """Tokens and anomalies per model, without generating."""
    from playground.backends.pool import ModelPool
    from playground.engine import ColumnRequest, Engine, RequestError, RunRequest

    settings = _settings(args)
    catalog = _catalog_with(settings, args.model)
    text = sys.stdin.read() if args.text == "-" else args.text
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    request = RunRequest(prompt=text, system_prompt=args.system or "",
                         columns=[ColumnRequest(m, params) for m in args.model],
                         specials_as_text=args.specials_as_text)
    engine = Engine(catalog, ModelPool(settings.data_dir, settings.device))
    try:
        run = engine.tokenize(request)
    except RequestError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print(json.dumps([_token_report(run, m) for m in run.models], indent=2, ensure_ascii=False))
    else:
        for m in run.models:
            report = _token_report(run, m)
            print(f"=== [{m.column}] {m.identity.catalog_id}: {report['prompt_tokens']} prompt tokens "
                  f"({report['prompt_format']}), your text {report['user_text_tokens']} tokens, "
                  f"{report['chars_per_token']:.2f} chars/token, window {report['context_window']}")
            if m.error:
                print(f"error: {m.error}")
            for a in report["anomalies"]:
                print(f"{a['severity']}: {a['kind']} (token {a['position']}): {a['message']}")
            if args.show_tokens:
                print(" ".join(f"{p.token_id}:{p.raw}" for p in m.prompt_pieces))
    return 0 if all(not m.error for m in run.models) else 1


def _token_report(run, model) -> dict:  # noqa: ANN001 - Run, ModelRun
    chars = len(run.prompt)
    return {
        "model": model.identity.catalog_id,
        "prompt_format": model.identity.prompt_format,
        "context_window": model.identity.context_window,
        "prompt_tokens": len(model.prompt_token_ids),
        "user_text_tokens": model.user_text_tokens,
        "characters": chars,
        "chars_per_token": chars / model.user_text_tokens if model.user_text_tokens else 0.0,
        "anomalies": [a.__dict__ for a in model.anomalies],
        "error": model.error,
        "tokens": [p.__dict__ for p in model.prompt_pieces],
    }


def cmd_sessions(args: argparse.Namespace) -> int:
    from playground.sessions.bundle import BundleError, export_bundle, import_bundle
    from playground.sessions.store import SessionError, SessionStore

    settings = _settings(args)
    if args.action == "list" and args.limit < 1:
        raise CliError(f"--limit must be at least 1, got {args.limit}")
    store = SessionStore(settings.database)
    try:
        if args.action == "list":
            listing = store.list_runs(limit=args.limit, query=args.search or "")
            if args.json:
                print(json.dumps([r.__dict__ for r in listing.rows], indent=2, ensure_ascii=False))
            for r in [] if args.json else listing.rows:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))
                prompt = " ".join(terminal_safe(r.prompt).split())[:60]
                models = terminal_safe(",".join(r.models))
                print(f"{r.id}  {when}  {models:<30}  {prompt}")
            if listing.skipped:
                print(f"playground: skipped {listing.skipped} unreadable saved run(s)", file=sys.stderr)
        elif args.action == "show":
            run = store.get(args.id)
            if args.json:
                print(run.to_json(indent=2))
            else:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_at))
                print(f"run {run.id}, {when}")
                if run.system_prompt:
                    print(f"system: {terminal_safe(run.system_prompt)}")
                print(f"prompt: {terminal_safe(run.prompt)}")
                _print_human(run, streamed=False)
        elif args.action == "export":
            Path(args.file).write_text(export_bundle(store.get(args.id)), encoding="utf-8")
            print(f"exported {args.id} to {args.file}", file=sys.stderr)
        elif args.action == "report":
            _write_report(store, args.id, args.file)
        elif args.action == "import":
            try:
                data = Path(args.file).read_bytes()
            except OSError as exc:
                raise CliError(f"cannot read {args.file}: {exc.strerror}") from exc
            run = import_bundle(data)
            file_id = run.id
            saved_id = store.save(run)  # never replaces a saved run: a taken id gets a fresh one
            renamed_from = file_id if saved_id != file_id else None
            if renamed_from:
                print(f"stored as {saved_id} (a saved run already has the id {file_id}; "
                      "it was left untouched)", file=sys.stderr)
            print(json.dumps({"saved_id": saved_id, "renamed_from": renamed_from}) if args.json else saved_id)
        elif args.action == "delete":
            if not store.delete(args.id):
                raise CliError(f"no saved run has the id {args.id!r}")
            print(f"deleted {args.id}", file=sys.stderr)
    except (SessionError, BundleError) as exc:  # may quote text from the file or the database
        raise CliError(terminal_safe(str(exc))) from exc
    return 0


def _write_report(store, run_id: str, file: str) -> None:  # noqa: ANN001 - a SessionStore
    """`sessions report ID FILE`: the format from FILE's extension (.html or .md), checked first."""
    from playground.report import ReportError, render_report, report_format

    try:
        fmt = report_format(file)
    except ReportError as exc:
        raise CliError(str(exc)) from exc
    text = render_report(store.get(run_id), fmt)
    try:
        Path(file).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {file}: {exc.strerror}") from exc
    print(f"wrote the {fmt} report of {run_id} to {file}", file=sys.stderr)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Models ranked from the blind votes (Bradley-Terry, bootstrap 95% intervals); --csv writes the votes."""
    from playground.inspect.leaderboard import leaderboard, standings_json, votes_csv
    from playground.sessions.store import SessionStore
    from playground.sessions.votes import VoteBook

    settings = _settings(args)
    book = VoteBook(SessionStore(settings.database))
    votes = book.votes(args.category or None)
    if args.csv:
        try:
            Path(args.csv).write_text(votes_csv(votes), encoding="utf-8", newline="")
        except OSError as exc:
            raise CliError(f"cannot write {args.csv}: {exc.strerror}") from exc
        print(f"wrote {len(votes)} vote(s) to {args.csv}", file=sys.stderr)
    standings = leaderboard(votes)
    if args.json:
        print(json.dumps(standings_json(standings), indent=2, ensure_ascii=False))
        return 0
    scope = f" in category {terminal_safe(args.category)!r}" if args.category else ""
    if not standings:
        print(f"no votes yet{scope}: vote on blind runs in the web page", file=sys.stderr)
        return 0
    print(f"{'#':>2}  {'model':<32} {'score':>6}  {'95% CI':>13}  {'votes':>5}")
    for s in standings:
        print(f"{s.rank:>2}  {terminal_safe(s.model)[:32]:<32} {s.score:>6.0f}  "
              f"{f'{s.low:.0f}-{s.high:.0f}':>13}  {s.votes:>5}")
    print(f"{len(votes)} vote(s){scope}; Bradley-Terry scores (1000 = the prior, 400 points = 10:1 odds)",
          file=sys.stderr)
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Assemble the bundled GGUF files and write their converted caches, so the first run is fast."""
    from playground.backends.base import BackendError
    from playground.backends.pool import ModelPool
    from playground.catalog import BUNDLED

    settings = _settings(args)
    pool = ModelPool(settings.data_dir, settings.device)
    for spec in BUNDLED:
        try:
            backend = pool.get(spec, progress=lambda msg, s=spec: print(f"{s.id}: {msg}", file=sys.stderr))
        except BackendError as exc:
            raise CliError(str(exc)) from exc
        how = "from converted cache" if backend.loaded_from_cache else "converted and cached"
        print(f"{spec.id}: ready ({how}, {backend.load_s:.1f} s)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    settings.models = settings.models + list(args.model or [])
    if args.shared_history:
        settings.shared_history = True
    _catalog(settings, [])  # fail early, before the server starts, on a bad catalog
    from playground.ui.app import ServeError, launch

    try:
        launch(settings)  # prints "serving on ..." once the server answers; returns when it stops
    except ServeError as exc:  # e.g. the port is taken: one line naming --port, no traceback
        raise CliError(str(exc)) from exc
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m playground", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--catalog", help="TOML model catalog file (env PLAYGROUND_CATALOG)")
        p.add_argument("--data-dir", help="saved data and model caches (env PLAYGROUND_DATA_DIR)")
        p.add_argument("--device", choices=["cpu", "cuda"], help="force a device (default: cuda if present)")

    serve = sub.add_parser("serve", help="serve the web app")
    common(serve)
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

    compare = sub.add_parser("compare", help="run one prompt on several models, headless")
    common(compare)
    compare.add_argument("--model", action="append", help="model column (repeat for more columns)")
    compare.add_argument("--system", help="system prompt")
    defaults = GenerationParams()
    compare.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    compare.add_argument("--temperature", type=float, default=defaults.temperature, help="0 = greedy")
    compare.add_argument("--top-p", type=float, default=defaults.top_p)
    compare.add_argument("--top-k", type=int, default=defaults.top_k)
    compare.add_argument("--repetition-penalty", type=float, default=defaults.repetition_penalty)
    compare.add_argument("--seed", type=int, default=defaults.seed)
    compare.add_argument("--stop", action="append", help="stop string (repeatable)")
    compare.add_argument("--timeout", type=float, default=defaults.timeout_s, help="seconds per model")
    compare.add_argument("--json", action="store_true", help="print the run record as JSON")
    compare.add_argument("--no-save", action="store_true", help="do not save the run to the session store")
    compare.add_argument("--no-attention", action="store_true", help="skip the attention capture pass")
    compare.add_argument("--specials-as-text", action="store_true",
                         help="tokenize special-token strings in the prompt (e.g. <|im_end|>) as plain text")
    compare.add_argument("--search", choices=["none", "local", "web"], default="none",
                         help="ground the prompt: search once, give every model the same sources")
    compare.add_argument("--sources", type=int, default=5, help="how many search results (default 5)")
    compare.add_argument("--fetch", action="store_true", help="fetch page text of the top web results")
    compare.add_argument("--corpus", help="folder of documents for --search local (env PLAYGROUND_CORPUS)")
    compare.add_argument("--region", help="web search region like us-en (env PLAYGROUND_SEARCH_REGION)")
    compare.add_argument("--safesearch", choices=["on", "moderate", "off"],
                         help="web search safe-search (env PLAYGROUND_SEARCH_SAFESEARCH, default moderate)")
    compare.add_argument("--timelimit", choices=["d", "w", "m", "y"],
                         help="web results of the last day/week/month/year (env PLAYGROUND_SEARCH_TIMELIMIT)")
    compare.add_argument("--db", help="SQLite file of saved runs (env PLAYGROUND_DB)")
    compare.add_argument("--continue", dest="continue_id", metavar="RUN_ID",
                         help="a follow-up: every column of the saved run continues its own conversation "
                              "(saved as a new run linked to it)")
    compare.add_argument("prompt", help="the prompt ('-' reads stdin)")
    compare.set_defaults(func=cmd_compare)

    tokenize = sub.add_parser("tokenize", help="tokens and anomaly checks per model, without generating")
    common(tokenize)
    tokenize.add_argument("--model", action="append", help="model (repeat for more)")
    tokenize.add_argument("--system", help="system prompt")
    tokenize.add_argument("--max-new-tokens", type=int, default=GenerationParams().max_new_tokens,
                          help="for the context-window check")
    tokenize.add_argument("--specials-as-text", action="store_true",
                          help="tokenize special-token strings in the text as plain text")
    tokenize.add_argument("--show-tokens", action="store_true", help="print id:token for every prompt token")
    tokenize.add_argument("--json", action="store_true")
    tokenize.add_argument("text", help="the text ('-' reads stdin)")
    tokenize.set_defaults(func=cmd_tokenize)

    sessions = sub.add_parser("sessions", help="saved runs: list, show, export, report, import, delete")
    common(sessions)
    sessions.add_argument("--db", help="SQLite file of saved runs (env PLAYGROUND_DB)")
    actions = sessions.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="recent runs, newest first")
    listing.add_argument("--search", help="full-text search over prompts and outputs")
    listing.add_argument("--limit", type=int, default=50, help="at most this many runs (default 50)")
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="print one run")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    export = actions.add_parser("export", help="write one run to a JSON file")
    export.add_argument("id")
    export.add_argument("file")
    report = actions.add_parser("report", help="write one run as a report: FILE.html (self-contained "
                                "page) or FILE.md (Markdown for an issue tracker)")
    report.add_argument("id")
    report.add_argument("file")
    importing = actions.add_parser("import", help="validate a JSON export and save it")
    importing.add_argument("file")
    importing.add_argument("--json", action="store_true")
    delete = actions.add_parser("delete", help="delete one run")
    delete.add_argument("id")
    sessions.set_defaults(func=cmd_sessions)

    ranking = sub.add_parser("leaderboard", help="models ranked from blind votes (Bradley-Terry, 95%% CI)")
    common(ranking)
    ranking.add_argument("--category", default="", help="only votes of this prompt category")
    ranking.add_argument("--json", action="store_true")
    ranking.add_argument("--csv", metavar="FILE", help="also write the votes as CSV to FILE")
    ranking.set_defaults(func=cmd_leaderboard)

    from playground.batch.cli import add_parser as add_batch_parser

    add_batch_parser(sub, common, sys.modules[__name__])

    prepare = sub.add_parser("prepare", help="assemble bundled models and write their converted caches")
    common(prepare)
    prepare.set_defaults(func=cmd_prepare)

    catalog = sub.add_parser("catalog", help="list the models")
    common(catalog)
    catalog.add_argument("--json", action="store_true")
    catalog.set_defaults(func=cmd_catalog)

    from playground.routing.cli import add_route_parser

    add_route_parser(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # a reader that went away (`sessions list | head -1`) shows here at the latest
        return status
    except CliError as exc:
        print(f"playground: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """The reader of stdout closed the pipe: nothing more can reach it, and it asked for no more.

    As Python's documentation recommends (signal module, "Note on SIGPIPE"): point stdout at devnull,
    so the interpreter's own flush at exit raises no second BrokenPipeError (a traceback)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
