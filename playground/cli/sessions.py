"""Saved runs and votes: `sessions list | show | export | report | import | delete` and `leaderboard`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from playground.cli.common import CliError, add_common, print_human, terminal_safe
from playground.config import settings_from_args
from playground.wording import plural

if TYPE_CHECKING:
    from playground.sessions.store import SessionStore


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The `sessions` subcommand with its actions, and `leaderboard`."""
    sessions = sub.add_parser("sessions", help="saved runs: list, show, export, report, import, delete")
    add_common(sessions)
    sessions.add_argument("--db", help="SQLite file of saved runs (env PLAYGROUND_DB)")
    actions = sessions.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="recent runs and batches (one line each), newest first")
    listing.add_argument("--search", help="full-text search over prompts and outputs (and batch names)")
    listing.add_argument("--limit", type=int, default=50, help="at most this many lines (default 50)")
    listing.add_argument("--batch-runs", action="store_true",
                         help="also list each run a batch saved (by default a batch is one line)")
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
    add_common(ranking)
    ranking.add_argument("--category", default="", help="only votes of this prompt category")
    ranking.add_argument("--json", action="store_true")
    ranking.add_argument("--csv", metavar="FILE", help="also write the votes as CSV to FILE")
    ranking.set_defaults(func=cmd_leaderboard)


def cmd_sessions(args: argparse.Namespace) -> int:
    """One action on the saved runs; errors from the store or a file are bad input (they may quote it)."""
    from playground.sessions.bundle import BundleError
    from playground.sessions.store import SessionError, SessionStore

    settings = settings_from_args(args)
    if args.action == "list" and args.limit < 1:
        raise CliError(f"--limit must be at least 1, got {args.limit}")
    store = SessionStore(settings.database)
    try:
        ACTIONS[args.action](store, args)
    except (SessionError, BundleError) as exc:  # may quote text from the file or the database
        raise CliError(terminal_safe(str(exc))) from exc
    return 0


def _list(store: SessionStore, args: argparse.Namespace) -> None:
    """Runs made by hand and one line per batch, newest first, as the page's History lists them; a
    batch's own runs too with --batch-runs (the store knows them: batch_items)."""
    from playground.batch.book import BatchBook

    query = args.search or ""
    listing = store.list_runs(limit=args.limit, query=query, batch_runs=args.batch_runs)
    entries: list[dict] = [{"kind": "run", **r.__dict__} for r in listing.rows]
    entries += [{"kind": "batch", **b.__dict__, "status": b.status}
                for b in BatchBook(store).list(None, args.limit, query)]
    entries = sorted(entries, key=lambda e: e["created_at"], reverse=True)[:args.limit]
    if args.json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
    for e in [] if args.json else entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e["created_at"]))
        models = terminal_safe(",".join(e["models"]))
        if e["kind"] == "batch":
            name = " ".join(terminal_safe(e["name"] or e["id"]).split())[:60]
            print(f"{e['id']}  {when}  {models:<30}  batch: {name} ({e['total']} prompts x "
                  f"{len(e['models'])} models, {e['status']}, {e['done'] + e['failed']}/{e['total']} done)")
            continue
        prompt = " ".join(terminal_safe(e["prompt"]).split())[:60]
        batch = f"  [batch {e['batch_id']}]" if e["batch_id"] else ""
        print(f"{e['id']}  {when}  {models:<30}  {prompt}{batch}")
    if listing.skipped:
        print(f"playground: skipped {plural(listing.skipped, 'unreadable saved run')}", file=sys.stderr)


def _show(store: SessionStore, args: argparse.Namespace) -> None:
    from playground.system_prompts import describe

    run = store.get(args.id)
    if args.json:
        print(run.to_json(indent=2))
        return
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_at))
    print(f"run {run.id}, {when}")
    if run.system_prompt:
        print(f"system: {terminal_safe(run.system_prompt)}")
    for model in run.models:  # a column's own system prompt, or the one its chat template wrote itself
        found = describe(run, model)
        if found.source in ("own", "template"):
            name = model.identity.catalog_id or model.identity.name
            print(f"column {model.column + 1} ({terminal_safe(name)}) {found.source_words()}: "
                  f"{terminal_safe(found.text)}")
    print(f"prompt: {terminal_safe(run.prompt)}")
    print_human(run, streamed=False)


def _export(store: SessionStore, args: argparse.Namespace) -> None:
    from playground.sessions.bundle import export_bundle

    Path(args.file).write_text(export_bundle(store.get(args.id)), encoding="utf-8")
    print(f"exported {args.id} to {args.file}", file=sys.stderr)


def _report(store: SessionStore, args: argparse.Namespace) -> None:
    """`sessions report ID FILE`: the format from FILE's extension (.html or .md), checked first."""
    from playground.report import ReportError, render_report, report_format

    try:
        fmt = report_format(args.file)
    except ReportError as exc:
        raise CliError(str(exc)) from exc
    text = render_report(store.get(args.id), fmt)
    try:
        Path(args.file).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {args.file}: {exc.strerror}") from exc
    print(f"wrote the {fmt} report of {args.id} to {args.file}", file=sys.stderr)


def _import(store: SessionStore, args: argparse.Namespace) -> None:
    """Save an exported run; never replaces a saved run: a taken id gets a fresh one (said on stderr)."""
    from playground.sessions.bundle import import_bundle

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from exc
    run = import_bundle(data)
    file_id = run.id
    saved_id = store.save(run)
    renamed_from = file_id if saved_id != file_id else None
    if renamed_from:
        print(f"stored as {saved_id} (a saved run already has the id {file_id}; "
              "it was left untouched)", file=sys.stderr)
    print(json.dumps({"saved_id": saved_id, "renamed_from": renamed_from}) if args.json else saved_id)


def _delete(store: SessionStore, args: argparse.Namespace) -> None:
    if not store.delete(args.id):
        raise CliError(f"no saved run has the id {args.id!r}")
    print(f"deleted {args.id}", file=sys.stderr)


ACTIONS = {"list": _list, "show": _show, "export": _export, "report": _report, "import": _import,
           "delete": _delete}


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Models ranked from the blind votes (Bradley-Terry, bootstrap 95% intervals); --csv writes the votes."""
    from playground.inspect.leaderboard import leaderboard, standings_json, votes_csv
    from playground.sessions.store import SessionStore
    from playground.sessions.votes import VoteBook

    settings = settings_from_args(args)
    book = VoteBook(SessionStore(settings.database))
    votes = book.votes(args.category or None)
    if args.csv:
        try:
            Path(args.csv).write_text(votes_csv(votes), encoding="utf-8", newline="")
        except OSError as exc:
            raise CliError(f"cannot write {args.csv}: {exc.strerror}") from exc
        print(f"wrote {plural(len(votes), 'vote')} to {args.csv}", file=sys.stderr)
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
        interval = f"{s.low:.0f}-{s.high:.0f}" if s.settled else "-"  # unsettled: no interval to claim
        print(f"{s.rank:>2}  {terminal_safe(s.model)[:32]:<32} {s.score:>6.0f}  {interval:>13}  {s.votes:>5}"
              + ("" if s.settled else f"  {s.progress}"))
    print(f"{plural(len(votes), 'vote')}{scope}; Bradley-Terry scores (1000 = the prior, 400 points = "
          "10:1 odds)", file=sys.stderr)
    return 0
