"""`python -m playground judge BATCH_ID --judge MODEL`: a judge model grades a saved batch's answers."""

from __future__ import annotations

import argparse
import json
import sys

from playground.cli.common import CliError, add_common, catalog_with, terminal_safe
from playground.config import settings_from_args
from playground.judge.spec import METHODS, JudgeSpec


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judge", help="a judge model grades a saved batch's answers (rubric, pairwise, best)")
    add_common(p)
    p.add_argument("batch_id", metavar="BATCH_ID", nargs="?",
                   help="a saved batch (python -m playground batch --list)")
    p.add_argument("--votes", action="store_true",
                   help="judge the blind runs people voted on (pairwise) and print the judge's agreement")
    p.add_argument("--category", default="", help="--votes: the votes of one category")
    p.add_argument("--judge", metavar="MODEL", required=True, help="the judge: any catalog model")
    p.add_argument("--judge-method", choices=METHODS, default="rubric",
                   help="rubric: a 1-5 grade per answer; pairwise: two columns, both orders; best: of all")
    p.add_argument("--rubric", default="", help="what the judge grades against (default: a general rubric)")
    p.add_argument("--columns", type=int, nargs=2, metavar=("A", "B"), help="pairwise: the two columns")
    p.add_argument("--again", action="store_true", help="judge the prompts this judge has judged already too")
    p.add_argument("--json", action="store_true", help="print every verdict as JSON")
    p.add_argument("--db", help="SQLite file of saved runs (env PLAYGROUND_DB)")
    p.set_defaults(func=cmd_judge)


def cmd_judge(args: argparse.Namespace) -> int:
    from playground.batch.cli import print_judged
    from playground.judge.spec import JudgeError
    from playground.service import RunService, SessionError, build_engine

    settings = settings_from_args(args)
    if bool(args.batch_id) == args.votes:
        raise CliError("give a BATCH_ID, or --votes to judge the voted blind runs (not both)")
    if args.votes and args.judge_method != "pairwise":
        raise CliError("--votes compares the judge with people's votes: use --judge-method pairwise")
    try:
        catalog_with(settings, [args.judge])  # an unknown judge: exit 2 before anything loads
    except CliError as exc:
        raise CliError(f"--judge: {exc}") from exc
    spec = JudgeSpec(args.judge, args.judge_method, args.rubric, list(args.columns) if args.columns else None)
    service = RunService(settings, engine=build_engine(settings, web=False))
    try:
        if args.votes:
            return _votes(service, spec, args.category, args.json)
        report = service.judge_batch(args.batch_id, spec, owner=None,
                                     progress=lambda n, of: print(f"[{n}/{of}] judged", file=sys.stderr))
    except (JudgeError, SessionError) as exc:
        raise CliError(terminal_safe(str(exc))) from exc
    if args.json:
        print(json.dumps([v.to_dict() for v in report.verdicts], indent=2, ensure_ascii=False))
    else:
        print_judged(service.batch_result(args.batch_id), terminal_safe)
    print(terminal_safe(report.summary), file=sys.stderr)
    return 1 if report.error else 0


def _votes(service, spec: JudgeSpec, category: str, as_json: bool) -> int:  # noqa: ANN001 - a RunService
    """Judge the voted blind runs, then print the judge's agreement with the votes."""
    import dataclasses

    report = service.judge_voted_runs(spec, category)
    print(terminal_safe(report.summary), file=sys.stderr)
    found = service.judge_agreement(spec.model, category)
    if as_json:
        rates = {"rate": found.rate, "decisive_rate": found.decisive_rate}
        print(json.dumps({**dataclasses.asdict(found), **rates}))
    elif found.rate is None:
        print("no vote met a readable verdict of this judge: nothing to compare")
    else:
        print(f"judge {terminal_safe(spec.model)} agrees with the blind votes on {found.agreed} of "
              f"{found.compared} ({found.rate:.0%}); ties: votes {found.human_ties}, judge "
              f"{found.judge_ties}, both {found.both_ties}; decisive both ways: {found.decisive_agreed} "
              f"of {found.decisive}; {found.no_verdict} without a readable verdict")
    return 1 if report.error else 0
