"""A bundled judge (smollm2-135m) over the sample prompt set answered by both bundled models (CPU).

Runs the sample set (assets/prompt_sets/sample.jsonl) as a batch of smollm2-135m and gemma3-270m
(greedy), then judges every --every'th prompt of it (default 3: 8 prompts, all four categories) twice
with smollm2-135m, greedy, --judge-tokens new tokens: rubric (1-5, pass = grade >= 3) and pairwise (both
orders). Reports how often the judge's rubric pass/fail agrees with the deterministic `contains`
scoring (echo check included) where the set has expected answers, how many verdicts could not be read,
and the pairwise position-consistency rate: how often the two orders gave the same verdict.

    PYTHONPATH=. .venv/bin/python bench/bench_judge.py [--prompts 24] [--tokens 32] [--work DIR] [--out PATH]

With --work DIR the batch and the verdicts live in DIR/runs.sqlite3: run it again with the same DIR and
it resumes (answered prompts are not run again, judged answers not judged again), so a busy machine
can finish it in several goes; the timings are then those of the last go only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from playground.backends.pool import ModelPool  # noqa: E402
from playground.batch.book import BatchBook  # noqa: E402
from playground.batch.prompt_set import SAMPLE, load_file  # noqa: E402
from playground.batch.runner import batch_result, run_batch  # noqa: E402
from playground.batch.spec import BatchSpec, ColumnSpec  # noqa: E402
from playground.catalog import Catalog  # noqa: E402
from playground.config import Settings  # noqa: E402
from playground.engine import Engine  # noqa: E402
from playground.judge.batches import judge_batch  # noqa: E402
from playground.judge.spec import PASS_GRADE, SCALE, JudgeSpec  # noqa: E402
from playground.record import GenerationParams  # noqa: E402
from playground.service import RunService  # noqa: E402
from playground.sessions.store import SessionStore  # noqa: E402

MACHINE = "2-core dev box, CPU"
MODELS = ("smollm2-135m", "gemma3-270m")
JUDGE = "smollm2-135m"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=24, help="prompts of the sample set (default: all 24)")
    parser.add_argument("--tokens", type=int, default=32, help="max new tokens of the answers (default 32)")
    parser.add_argument("--data-dir", default=os.environ.get("PLAYGROUND_DATA_DIR"))
    parser.add_argument("--judge", default=JUDGE, help=f"the judge model (default {JUDGE})")
    parser.add_argument("--every", type=int, default=3, help="judge every k-th prompt (default 3)")
    parser.add_argument("--judge-tokens", type=int, default=24, help="the judge's max new tokens")
    parser.add_argument("--work", help="folder of the batch's database, to resume (default: a fresh temp)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "judge_sample_cpu.json"))
    args = parser.parse_args()

    settings = Settings.from_env()
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir
    engine = Engine(Catalog.build(), ModelPool(data_dir, device="cpu"))
    tmp = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-judge-"))
    service = RunService(Settings(data_dir=tmp), engine=engine, store=SessionStore(tmp / "runs.sqlite3"))
    items = load_file(SAMPLE)[: args.prompts]
    spec = BatchSpec(items=items, columns=[ColumnSpec(m, GenerationParams(max_new_tokens=args.tokens))
                                           for m in MODELS], name="judge bench")
    earlier = [b for b in BatchBook(service.store).list() if b.name == spec.name and b.total == len(items)]
    resumed = bool(earlier)
    batch_id = earlier[0].id if earlier else BatchBook(service.store).create(spec, owner="bench")
    start = time.perf_counter()
    progress = run_batch(service, batch_id)
    answer_s = time.perf_counter() - start
    assert progress.state == "complete", progress
    print(f"answered {len(items)} prompts x {len(MODELS)} models in {answer_s:.1f} s", flush=True)

    judged = set(range(0, len(items), args.every))
    timings, reports = {}, {}
    for method in ("rubric", "pairwise"):
        start = time.perf_counter()
        judge = JudgeSpec(args.judge, method, max_new_tokens=args.judge_tokens)
        report = judge_batch(service, batch_id, judge,
                             progress=lambda n, of: print(f"  judged {n}/{of}", flush=True), only=judged)
        timings[method] = time.perf_counter() - start
        reports[method] = [v for v in service.batch_verdicts(batch_id)
                           if v.method == method and v.judge == args.judge]
        print(f"{report.summary} in {timings[method]:.1f} s", flush=True)

    rubric = reports["rubric"]
    cells = {(c.prompt_index, c.column): c for c in batch_result(service, batch_id).cells}
    compared = agreed = 0
    rows = []
    for v in rubric:
        cell = cells[(v.prompt_index, v.columns[0])]
        grade = None if v.scores[0] is None else round(1 + v.scores[0] * (SCALE - 1))
        rows.append({"prompt": cell.prompt_id, "model": v.models[0], "contains": cell.score,
                     "contains_note": cell.score_note, "judge_grade": grade,
                     "judge_said": v.outputs[0][:200]})
        if grade is None or cell.score is None:
            continue
        compared += 1
        agreed += (grade >= PASS_GRADE) == (cell.score >= 1.0)
    pairs = reports["pairwise"]
    readable = [v for v in pairs if v.consistent is not None]
    consistent = sum(1 for v in readable if v.consistent)
    result = {
        "machine": MACHINE,
        "date": datetime.date.today().isoformat(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "judge": args.judge,
        "answer_models": list(MODELS),
        "prompt_set": "assets/prompt_sets/sample.jsonl",
        "prompts": len(items),
        "answer_max_new_tokens": args.tokens,
        "judged_prompts": sorted(items[i].id for i in judged),
        "judge_max_new_tokens": args.judge_tokens,
        "resumed": resumed,  # True: finished in several goes (--work), the timings are the last go's
        "answer_s": round(answer_s, 1),
        "judge_s": {k: round(t, 1) for k, t in timings.items()},
        "rubric": {
            "verdicts": len(rubric),
            "unreadable": sum(1 for v in rubric if v.scores[0] is None),
            "pass_grade": PASS_GRADE,
            "compared_with_contains": compared,
            "agreed_with_contains": agreed,
            "agreement_with_contains": round(agreed / compared, 3) if compared else None,
            "grades": {str(g): sum(1 for r in rows if r["judge_grade"] == g) for g in range(1, SCALE + 1)},
        },
        "pairwise": {
            "verdicts": len(pairs),
            "unreadable": len(pairs) - len(readable),
            "both_orders_readable": len(readable),
            "both_orders_agree": consistent,
            "position_consistency": round(consistent / len(readable), 3) if readable else None,
            "wins": {m: sum(1 for v in pairs if v.outcome == "win"
                            and v.models[v.columns.index(v.winner)] == m) for m in MODELS},
            "ties": sum(1 for v in pairs if v.outcome == "tie"),
        },
        "rows": rows,
        "note": "a tiny bundled judge, greedy: its figures say how far such a judge can be trusted, not how "
                "good model-graded scoring is; agreement is with contains scoring (echo check on); a verdict "
                "the parser cannot read gets no score (playground/judge/parse.py), never a guessed one",
    }
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: result[k] for k in ("rubric", "pairwise")}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
