"""`python -m playground batch`: run a prompt set across models, resume, list, export and import batches."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import ModuleType

from playground.batch.score import METHODS, Scoring
from playground.batch.summary import BatchResult
from playground.config import settings_from_args
from playground.judge.spec import METHODS as JUDGE_METHODS
from playground.judge.spec import JudgeSpec
from playground.params import build_params, params_from_flags
from playground.wording import plural


def add_parser(sub: argparse._SubParsersAction, common, cli: ModuleType) -> None:  # noqa: ANN001
    """The `batch` subcommand; `cli` is playground.cli.common (CliError, catalog_with, terminal_safe): passed
    in, not imported, so that this package does not import the command line above it."""
    p = sub.add_parser("batch", help="run a prompt set across models; score, summarise, resume, list")
    common(p)
    p.add_argument("--model", action="append", help="model column (repeat for more columns)")
    p.add_argument("--prompts", metavar="FILE", help="prompt set: .jsonl, .csv, or one prompt a line")
    p.add_argument("--format", choices=["lines", "csv", "jsonl"], help="the set's format (default: by name)")
    p.add_argument("--name", default="", help="a name for the batch")
    p.add_argument("--score", choices=METHODS,
                   help="scoring (default: contains when the set has expected answers, else agreement)")
    p.add_argument("--tolerance", type=float, default=1e-6, help="numeric scoring: absolute tolerance")
    p.add_argument("--reference-column", type=int, default=0, help="agreement scoring: the reference column")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--timeout", type=float, default=build_params().timeout_s, help="seconds per model")
    p.add_argument("--attention", action="store_true", help="capture attention for every saved run")
    p.add_argument("--alone", action="store_true",
                   help="run each model's prompt by itself, one model at a time: latency is the wall clock "
                        "without neighbours (default: side by side, latency is each model's own time)")
    p.add_argument("--judge", metavar="MODEL", help="a catalog model grades the answers after the batch")
    p.add_argument("--judge-method", choices=JUDGE_METHODS, default="rubric",
                   help="rubric: a 1-5 grade per answer; pairwise: the first two columns, both orders; "
                        "best: the best answer of all columns (default: rubric)")
    p.add_argument("--rubric", default="", help="what the judge grades against (default: a general rubric)")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.add_argument("--resume", metavar="BATCH_ID", help="continue a stopped batch (or show a finished one)")
    p.add_argument("--list", action="store_true", help="list saved batches, newest first")
    p.add_argument("--export", nargs=2, metavar=("BATCH_ID", "FILE"), help="write a batch to a JSON file")
    p.add_argument("--import", dest="import_file", metavar="FILE", help="validate a batch export and save it")
    p.add_argument("--db", help="SQLite file of saved runs (env PLAYGROUND_DB)")
    p.set_defaults(func=lambda args: cmd_batch(args, cli))


def cmd_batch(args: argparse.Namespace, cli: ModuleType) -> int:
    CliError, _catalog_with, terminal_safe = cli.CliError, cli.catalog_with, cli.terminal_safe  # noqa: N806
    from playground.batch.book import BatchBook
    from playground.batch.prompt_set import PromptSetError, load_file
    from playground.batch.spec import BatchSpec, ColumnSpec, SpecError
    from playground.judge.carry import export_batch, import_batch  # the batch's judge verdicts too
    from playground.sessions.bundle import BundleError
    from playground.sessions.store import SessionError, SessionStore

    settings = settings_from_args(args)
    modes = [m for m in ("list", "export", "import_file", "resume") if getattr(args, m)]
    if len(modes) > 1:
        raise CliError("give one of --list, --export, --import and --resume")
    if modes and args.judge:
        raise CliError("--judge grades a new batch: for a saved one, `python -m playground judge BATCH_ID`")
    if modes and (args.model or args.prompts):
        raise CliError("--model and --prompts start a new batch: leave them out with "
                       "--list, --export, --import or --resume")
    try:
        if args.list:
            return _list(BatchBook(SessionStore(settings.database)), args.json, terminal_safe)
        if args.export:
            batch_id, file = args.export
            text = export_batch(SessionStore(settings.database), batch_id)
            try:
                Path(file).write_text(text, encoding="utf-8")
            except OSError as exc:
                raise CliError(f"cannot write {file}: {exc.strerror}") from exc
            print(f"exported batch {batch_id} to {file}", file=sys.stderr)
            return 0
        if args.import_file:
            try:
                data = Path(args.import_file).read_bytes()
            except OSError as exc:
                raise CliError(f"cannot read {args.import_file}: {exc.strerror}") from exc
            imported = import_batch(SessionStore(settings.database), data)
            if imported.renamed_from:
                print(f"stored as {imported.batch_id} (a saved batch already has the id "
                      f"{imported.renamed_from}; it was left untouched)", file=sys.stderr)
            print(json.dumps(imported.__dict__) if args.json else imported.batch_id)
            return 0
        if args.resume:
            spec = BatchBook(SessionStore(settings.database)).get(args.resume)
            _catalog_with(settings, [c.model for c in spec.columns])
        else:
            if not args.prompts:
                raise CliError("give --prompts FILE (or --resume, --list, --export, --import)")
            _catalog_with(settings, args.model)
            items = load_file(args.prompts, args.format)
            params = params_from_flags(args)  # --max-new-tokens, --temperature, --timeout: checked
            method = args.score or ("contains" if any(i.expected for i in items) else "agreement")
            if args.judge:
                try:
                    _catalog_with(settings, [args.judge])  # an unknown judge is bad input: nothing runs
                except CliError as exc:
                    raise CliError(f"--judge: {exc}") from exc
            spec = BatchSpec(items=items, columns=[ColumnSpec(m, params) for m in args.model],
                             scoring=Scoring(method, args.tolerance, args.reference_column),
                             name=args.name or Path(args.prompts).name, capture_attention=args.attention,
                             alone=args.alone, judge=JudgeSpec(args.judge, args.judge_method, args.rubric)
                             if args.judge else None)
            problems = spec.problems()
            if problems:
                raise CliError("; ".join(problems))
        scoring = spec.scoring
        if args.score or args.resume is None:
            scoring = Scoring(args.score or spec.scoring.method, args.tolerance, args.reference_column)
        problems = scoring.problems(len(spec.columns))
        if problems:
            raise CliError("; ".join(problems))
        return _run(settings, spec, bool(args.resume), scoring, args.json, cli)
    except (SessionError, BundleError, PromptSetError, SpecError) as exc:
        raise CliError(terminal_safe(str(exc))) from exc


def _run(settings, spec, resume: bool, scoring: Scoring, as_json: bool, cli: ModuleType) -> int:  # noqa: ANN001
    CliError, safe = cli.CliError, cli.terminal_safe  # noqa: N806
    from playground.batch.book import BatchBook
    from playground.batch.runner import batch_result, run_batch, shared_embed
    from playground.service import RunService, build_engine

    service = RunService(settings, engine=build_engine(settings, web=False))
    embed = None
    if scoring.method in ("semantic", "agreement"):
        from playground.backends.embeddings import EmbeddingError, EmbeddingModel

        try:
            EmbeddingModel.shared().load()  # before any model runs: a missing package is bad input
        except EmbeddingError as exc:
            raise CliError(str(exc)) from exc
        embed = shared_embed()
    batch_id = spec.id if resume else BatchBook(service.store).create(spec, owner="cli")
    print(f"batch {batch_id}: {plural(len(spec.items), 'prompt')} x {plural(len(spec.columns), 'model')}"
          f"{' (resuming)' if resume else ''}", file=sys.stderr)

    def show(p) -> None:  # noqa: ANN001 - a Progress
        if p.current:
            eta = f", about {p.eta_s:.0f} s left" if p.eta_s is not None else ""
            print(f"[{p.done}/{p.total}] {safe(p.current)}{eta}", file=sys.stderr, flush=True)

    progress = run_batch(service, batch_id, progress=show)
    result = batch_result(service, batch_id, scoring, embed)
    if as_json:
        print(json.dumps({"batch_id": batch_id, "state": progress.state, **result.to_dict()},
                         indent=2, ensure_ascii=False))
    else:
        _print_summary(result, safe)
    if spec.judge is not None and progress.message:
        print(safe(progress.message), file=sys.stderr)
    print(f"batch {batch_id} {progress.state}: {result.done} of {plural(result.total, 'prompt')} saved as "
          f"runs (python -m playground batch --resume {batch_id})", file=sys.stderr)
    return 0 if progress.state == "complete" else 1


def _print_summary(result: BatchResult, safe) -> None:  # noqa: ANN001
    print(f"scoring: {result.scoring.method}")
    print(f"latency: {result.timing or 'no answers yet'}")
    print(f"{'model':<28} {'score':>6} {'ok':>5} {'p50 s':>6} {'p95 s':>6} {'max s':>6} {'ttft':>5} "
          f"{'tokens':>6} {'tok/s':>6} {'cost $':>8}  anomalies")
    for m in result.models:
        score = "-" if m.mean_score is None else f"{m.mean_score:.2f}"
        anomalies = ", ".join(f"{k} {v}" for k, v in m.anomalies.items()) or "-"
        print(f"{safe(m.model)[:28]:<28} {score:>6} {f'{m.answered}/{m.prompts}':>5} {m.latency_p50_s:>6.2f} "
              f"{m.latency_p95_s:>6.2f} {m.latency_max_s:>6.2f} {m.ttft_p50_s:>5.2f} {m.output_tokens:>6} "
              f"{m.mean_tok_s:>6.1f} {m.cost_usd:>8.4f}  {anomalies}")
    print_judged(result, safe)


def print_judged(result: BatchResult, safe) -> None:  # noqa: ANN001
    """Per model, the judge's mean score and how many answers it gave no readable verdict for."""
    judged = [c for c in result.cells if c.judge_method]
    if not judged:
        return
    print(f"judge ({judged[0].judge_method}):")
    for m in result.models:
        own = [c for c in judged if c.column == m.column]
        scores = [c.judge_score for c in own if c.judge_score is not None]
        mean = f"{sum(scores) / len(scores):.2f}" if scores else "-"
        print(f"  {safe(m.model)[:28]:<28} {mean:>6}  judged {len(own)}, no verdict {len(own) - len(scores)}")


def _list(book, as_json: bool, safe) -> int:  # noqa: ANN001
    rows = book.list()
    if as_json:
        print(json.dumps([r.__dict__ for r in rows], indent=2, ensure_ascii=False))
        return 0
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))
        print(f"{r.id}  {when}  {r.done + r.failed:>4}/{r.total:<4}  {safe(','.join(r.models))[:40]:<40}  "
              f"{safe(r.name)[:40]}")
    if not rows:
        print("no saved batches", file=sys.stderr)
    return 0
