"""`compare`: one prompt on several models, headless; `--continue` for the next turn of a saved run.

Starts like `serve` (playground/startup.py): once the input is checked, the named models
start loading, in parallel, as soon as torch is imported; the run service, the search
and the run's set-up happen while they load, and the columns find them loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from playground.cli.common import (
    CliError,
    add_common,
    catalog_with,
    print_human,
    read_stdin,
    terminal_safe,
    text_arg,
)
from playground.config import Settings, settings_from_args
from playground.params import build_params, params_from_flags

if TYPE_CHECKING:
    from playground.engine import Engine
    from playground.grounding.snapshot import SearchOptions
    from playground.requests import RunRequest
    from playground.service import Outcome
    from playground.startup import Startup


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `compare` subcommand and its flags (README "Command line")."""
    compare = sub.add_parser("compare", help="run one prompt on several models, headless")
    add_common(compare)
    compare.add_argument("--model", action="append", help="model column (repeat for more columns)")
    compare.add_argument("--system", help="system prompt")
    defaults = build_params()
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


def cmd_compare(args: argparse.Namespace) -> int:
    """Check everything, start the loads, run; 0 when any model answered, 1 when every one failed."""
    from playground.requests import RequestError, validate_request

    settings = settings_from_args(args)
    request = _request(args, settings)
    options = _search_options(args, settings)
    try:
        validate_request(request)  # bad input is refused before any model loads
    except RequestError as exc:
        raise CliError(str(exc)) from exc
    engine, startup = _start_loading(settings, [c.model for c in request.columns])
    from playground.grounding.snapshot import default_providers
    from playground.service import RunService

    service = RunService(settings, engine=engine, providers=default_providers())
    notice = service.prepare(request, options)
    if notice:
        print(f"playground: {notice}", file=sys.stderr)
    startup.mark("run started")
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
    startup.mark("run finished")
    return _report(outcome, args.json, streamed)


def _request(args: argparse.Namespace, settings: Settings) -> RunRequest:
    """The run the flags ask for: new columns, or the next turn of a saved run (--continue)."""
    from playground.requests import ColumnRequest, RunRequest

    if args.continue_id:
        if args.model or args.system is not None:
            raise CliError("--continue keeps the saved run's models and system prompts: "
                           "leave out --model and --system")
    else:
        catalog_with(settings, args.model)
    params = params_from_flags(args, stop=[text_arg(s, "stop string") for s in args.stop or []])
    prompt = text_arg(read_stdin() if args.prompt == "-" else args.prompt, "prompt")
    if args.continue_id:
        return _follow_up(settings, args.continue_id, prompt)
    return RunRequest(
        prompt=prompt,
        system_prompt=text_arg(args.system or "", "system prompt"),
        columns=[ColumnRequest(m, params) for m in args.model],
        specials_as_text=args.specials_as_text,
        capture_attention=not args.no_attention,
    )


def _follow_up(settings: Settings, run_id: str, prompt: str) -> RunRequest:
    """The next turn of a saved run's conversation: each column continues its own, with its model,
    parameters and system prompt (the generation flags apply to new runs only)."""
    from playground.sessions.rerun import follow_up_from
    from playground.sessions.store import SessionError, SessionStore

    try:
        parent = SessionStore(settings.database).get(run_id)
    except (SessionError, KeyError) as exc:
        raise CliError(f"cannot continue {run_id!r}: {exc}") from exc
    catalog_with(settings, [m.identity.reference or m.identity.catalog_id for m in parent.models])
    return follow_up_from(parent, prompt)


def _search_options(args: argparse.Namespace, settings: Settings) -> SearchOptions | None:
    """--search's options, checked: a bad flag or environment value is bad input, before any model loads."""
    if args.search == "none":
        return None
    from playground.grounding.providers import SearchError
    from playground.grounding.snapshot import SearchOptions

    options = SearchOptions(args.search, args.sources, args.fetch, settings.corpus_dir,
                            settings.corpus_index, tuple(settings.fetch_allow),
                            region=settings.search_region if args.region is None else args.region,
                            safesearch=args.safesearch or settings.search_safesearch,
                            timelimit=args.timelimit or settings.search_timelimit)
    try:
        options.validate()
    except SearchError as exc:
        raise CliError(str(exc)) from exc
    return options


def _start_loading(settings: Settings, refs: list[str]) -> tuple[Engine, Startup]:
    """The engine, its pool already loading the run's models in the background, as `serve` loads its
    default models (playground/startup.py; PLAYGROUND_STARTUP_TRACE=FILE writes the timeline)."""
    from playground.startup import Startup, loadable_specs

    startup = Startup(quiet=True)
    startup.mark("playground imported")
    from playground.service import build_engine  # the engine: torch and transformers

    startup.mark("torch, transformers imported")
    engine = build_engine(settings, web=False)
    startup.mark("engine built")
    startup.preload(engine.pool, loadable_specs(engine.catalog, refs))
    return engine, startup


def _report(outcome: Outcome, as_json: bool, streamed: bool) -> int:
    """Print the finished run (JSON, or each column's answer and figures) and where it was saved."""
    run = outcome.run
    if outcome.save_error:
        print(f"playground: {outcome.save_error}", file=sys.stderr)
    saved_id = outcome.saved_id or None
    if as_json:
        print(json.dumps({"saved_id": saved_id, **run.to_dict()}, indent=2, ensure_ascii=False))
    else:
        print_human(run, streamed=streamed)
        if saved_id:
            print(f"saved as {saved_id} (python -m playground sessions show {saved_id})", file=sys.stderr)
    return 0 if any(not m.error for m in run.models) else 1
