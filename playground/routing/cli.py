"""`python -m playground route`: which model the rules pick for a prompt, and why; or the rules'
preview and threshold sweep over a table of scored results.

Exit status: 0 on success, 2 on bad rules or bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from playground.config import SettingsError, settings_from_args
from playground.controls import strip_controls
from playground.routing.evaluate import Preview, ResultTable, Sweep, TableError, preview, sweep
from playground.routing.rules import (
    APPROX_ANOMALIES_NOTE,
    APPROX_TOKENS_NOTE,
    PromptFacts,
    RulesError,
    RuleSet,
    load_rules,
    route,
)

NEEDS_BATCH = ("--batch needs a saved batch (python -m playground batch), and this version cannot load "
               "saved batches; give the scored results as a table with --results FILE.json instead")

class RouteError(Exception):
    """Bad input: `playground: error: ...`, exit status 2."""


def _safe(text: object) -> str:
    return strip_controls(str(text))


def add_route_parser(sub: argparse._SubParsersAction,
                     common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("route", help="which model routing rules pick for a prompt (and why), or their "
                       "preview and threshold sweep over scored results")
    common(p)
    p.add_argument("--rules", required=True, help="rules file, YAML or JSON (.json)")
    p.add_argument("--json", action="store_true", help="print the decision (or preview) as JSON")
    p.add_argument("--category", default="", help="the prompt's category (for `category:` rules)")
    p.add_argument("--tokenizer", metavar="MODEL",
                   help="count prompt tokens and find anomalies with this model's real tokenizer "
                        "('default' = the rules' default model; loads the model: seconds to a minute); "
                        "without it they are approximated")
    p.add_argument("--results", metavar="FILE",
                   help="a table of scored results (JSON: {\"rows\": [...]}, see README): print the preview")
    p.add_argument("--prompts", metavar="FILE", help="the prompt set of a saved batch (with --batch)")
    p.add_argument("--batch", metavar="ID", help="a saved batch to evaluate the rules on (no model runs)")
    p.add_argument("--db", help="SQLite file of saved runs and batches (env PLAYGROUND_DB)")
    p.add_argument("--sweep", choices=["prompt_tokens", "margin"],
                   help="with --results: sweep a threshold on this router score (needs --strong, --weak)")
    p.add_argument("--strong", help="the strong model of the sweep")
    p.add_argument("--weak", help="the weak model of the sweep")
    p.add_argument("--threshold", type=float, help="the sweep's chosen threshold, marked on the curve")
    p.add_argument("--figure", metavar="FILE.html", help="write the sweep's figure to FILE.html")
    p.add_argument("prompt", nargs="?", help="the prompt ('-' reads stdin)")
    p.set_defaults(func=cmd_route)


def cmd_route(args: argparse.Namespace) -> int:
    try:
        return _route(args)
    except (RouteError, RulesError, TableError, SettingsError) as exc:
        print(f"playground: error: {_safe(exc)}", file=sys.stderr)
        return 2


def _route(args: argparse.Namespace) -> int:
    rules = load_rules(args.rules)
    if args.prompts and not args.batch:
        raise RouteError("--prompts goes with --batch ID (the saved batch run on that prompt set)")
    if args.results or args.batch:
        if args.prompt is not None:
            raise RouteError("give either a PROMPT or --results FILE / --batch ID, not both")
        if args.results and args.batch:
            raise RouteError("give either --results FILE or --batch ID, not both")
        return _evaluate(args, rules)
    if args.sweep:
        raise RouteError("--sweep needs --results FILE (scored results to sweep over)")
    if args.prompt is None:
        raise RouteError("give a PROMPT to route ('-' reads stdin), or --results FILE")
    _check_catalog(args, rules)
    text = sys.stdin.buffer.read().decode("utf-8", "replace") if args.prompt == "-" else args.prompt
    facts = PromptFacts(text, args.category)
    measured_by = None
    if args.tokenizer and (rules.needs_tokens() or rules.needs_anomalies()):
        measured_by = rules.default if args.tokenizer == "default" else args.tokenizer
        facts = _measured(args, measured_by, facts)
    decision = route(rules, facts)
    notes = [APPROX_TOKENS_NOTE if kind == "prompt_tokens" else APPROX_ANOMALIES_NOTE
             for kind in decision.approximate]
    if args.json:
        print(json.dumps({**decision.to_dict(), "category": args.category, "tokenizer": measured_by,
                          "notes": notes}, indent=2, ensure_ascii=False))
    else:
        print(_safe(decision.model))
        print(f"  because {_safe(decision.reason)}", file=sys.stderr)
        for note in notes:
            print(f"playground: {note}; pass --tokenizer MODEL for the real count", file=sys.stderr)
    return 0


def _check_catalog(args: argparse.Namespace, rules: RuleSet) -> None:
    """Every model the rules name must be in the catalog: a decision naming a model that cannot run
    is bad input (exit 2), not an answer. (Previews check against the results' models instead.)"""
    from playground.catalog import Catalog, CatalogError

    settings = settings_from_args(args)
    try:
        known = Catalog.build(settings.catalog_file, settings.models).ids()
    except (CatalogError, ValueError) as exc:
        raise RouteError(f"the catalog: {exc}") from exc
    missing = [m for m in rules.models() if m not in known]
    if missing:
        names = ", ".join(repr(m[:80]) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise RouteError(f"{args.rules}: the rules name {names}, which the catalog does not have "
                         f"(catalog: {', '.join(known[:20])}{' ...' if len(known) > 20 else ''}); add it "
                         "with --catalog FILE or PLAYGROUND_MODELS")


def _measured(args: argparse.Namespace, model: str, facts: PromptFacts) -> PromptFacts:
    """The prompt's token count and anomaly kinds from the model's own tokenizer (loads the model)."""
    from playground.backends.pool import ModelPool
    from playground.catalog import Catalog, CatalogError
    from playground.engine import ColumnRequest, Engine, RequestError, RunRequest
    from playground.params import build_params

    settings = settings_from_args(args)
    try:
        catalog = Catalog.build(settings.catalog_file, settings.models)
        catalog.get(model)
    except (CatalogError, ValueError) as exc:
        raise RouteError(f"--tokenizer: {exc}") from exc
    request = RunRequest(prompt=facts.prompt, columns=[ColumnRequest(model, build_params())])
    try:
        run = Engine(catalog, ModelPool(settings.data_dir, settings.device)).tokenize(request)
    except RequestError as exc:
        raise RouteError(str(exc)) from exc
    column = run.models[0]
    if column.error:
        raise RouteError(f"--tokenizer {model}: {column.error}")
    return PromptFacts(facts.prompt, facts.category, column.user_text_tokens,
                       tuple(a.kind for a in column.anomalies))


def _batch_table(args: argparse.Namespace, rules: RuleSet) -> ResultTable:
    """The scored results of a saved batch (its own scoring), without running any model."""
    try:
        from playground.batch.book import BatchBook
        from playground.batch.prompt_set import PromptSetError, load_file
        from playground.batch.runner import batch_result, shared_embed
    except ImportError as exc:
        raise RouteError(NEEDS_BATCH) from exc
    from playground.routing.evaluate import table_from_batch
    from playground.service import RunService, build_engine
    from playground.sessions.store import SessionError

    settings = settings_from_args(args)
    service = RunService(settings, engine=build_engine(settings))  # loads no model: reads the store
    try:
        spec = BatchBook(service.store).get(args.batch)
        embed = shared_embed() if spec.scoring.method in ("semantic", "agreement") else None
        result = batch_result(service, args.batch, embed=embed)
    except (SessionError, KeyError, ValueError) as exc:
        raise RouteError(f"batch {args.batch}: {exc}") from exc
    items = spec.items
    if args.prompts:
        try:
            given = load_file(args.prompts)
        except PromptSetError as exc:
            raise RouteError(str(exc)) from exc
        if [i.id for i in given] != [i.id for i in items]:
            raise RouteError(f"{args.prompts} is not the prompt set of batch {args.batch} "
                             "(its prompt ids differ)")
        items = given  # the file's categories may have been edited since: use them
    return table_from_batch(items, result.cells, count_model=rules.default)


def _evaluate(args: argparse.Namespace, rules: RuleSet) -> int:
    if args.batch:
        return _report(args, rules, _batch_table(args, rules))
    try:
        data = json.loads(Path(args.results).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RouteError(f"cannot read {args.results}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RouteError(f"{args.results} is not a JSON table of results: {exc}") from exc
    if not isinstance(data, dict):
        raise RouteError(f"{args.results}: expected a JSON object with \"rows\"")
    return _report(args, rules, ResultTable.from_dict(data))


def _report(args: argparse.Namespace, rules: RuleSet, table: ResultTable) -> int:
    result = preview(rules, table)
    swept = None
    if args.sweep:
        if not args.strong or not args.weak:
            raise RouteError("--sweep needs --strong MODEL and --weak MODEL")
        swept = sweep(table, args.strong, args.weak, args.sweep, chosen=args.threshold)
        if args.sweep == "prompt_tokens" and any(r.prompt_tokens is None for r in table.rows):
            print(f"playground: sweep: {APPROX_TOKENS_NOTE} where the table has no count", file=sys.stderr)
        if args.figure:
            from playground.routing.figures import sweep_figure

            try:
                sweep_figure(swept).write_html(args.figure, include_plotlyjs=True)
            except OSError as exc:
                raise RouteError(f"cannot write {args.figure}: {exc.strerror or exc}") from exc
    if args.json:
        print(json.dumps({"preview": result.to_dict(), "sweep": swept.to_dict() if swept else None},
                         indent=2, ensure_ascii=False))
        return 0
    _print_preview(result)
    if swept:
        _print_sweep(swept)
    return 0


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_preview(result: Preview) -> None:
    for a in result.assignments:
        print(f"{_safe(a.prompt_id):<12} -> {_safe(a.model):<24} {_safe(a.reason)}")
    print(f"\n{'policy':<32} {'mean score':>10} {'p95 s':>8} {'cost':>10}  shares")
    for s in [result.routed, *result.baselines.values()]:
        shares = ", ".join(f"{_safe(m)} {v:.0%}" for m, v in s.shares.items())
        print(f"{_safe(s.label)[:32]:<32} {_fmt(s.mean_score, '.3f'):>10} {_fmt(s.p95_total_s, '.2f'):>8} "
              f"{_fmt(s.cost, '.4f'):>10}  {shares}")
    for kind in result.approximate:
        note = APPROX_TOKENS_NOTE if kind == "prompt_tokens" else APPROX_ANOMALIES_NOTE
        print(f"playground: {note}", file=sys.stderr)


def _print_sweep(s: Sweep) -> None:
    print(f"\nsweep on {s.router}: {_safe(s.weak)} (score {s.weak_quality:.3f}) -> {_safe(s.strong)} "
          f"(score {s.strong_quality:.3f})")
    for p in s.points:
        print(f"  threshold {p.threshold:>8g}  {p.strong_share:>5.0%} strong  score {p.quality:.3f}  "
              f"gap recovered {_fmt(p.pgr, '.0%')}")
    if s.chosen:
        print(f"  chosen threshold {s.chosen.threshold:g}: {s.chosen.strong_share:.0%} to {_safe(s.strong)}, "
              f"score {s.chosen.quality:.3f}, gap recovered {_fmt(s.chosen.pgr, '.0%')}")
    print(f"APGR (area under gap recovered vs strong share): {_fmt(s.apgr, '.1%')}")
