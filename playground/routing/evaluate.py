"""Rules against scored results: the preview, and the threshold sweep with RouteLLM's APGR.

Everything here reads a `ResultTable`: per prompt its id, text, category, token count and anomaly
kinds, and per model the score, total latency and cost of that model's answer. A saved batch
(playground/batch) can be turned into one; so can a hand-built table in a test. Pure Python.

Conventions, stated once:
- a score or latency of None (a failed answer, an unscored one) is left out of that mean / p95;
  the summary says how many were left out;
- cost is the total over the set, in the table's currency; None when no answer has a price;
- p95 is the linear-interpolated 95th percentile (numpy's default method).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from playground.patterns import TimeBudget
from playground.routing.rules import Decision, PromptFacts, RuleSet, RuleTimeout, route

PREVIEW_BUDGET_S = 5.0  # all `matches:` searches of one preview, over every prompt of the table


class TableError(ValueError):
    """A table the rules cannot be evaluated on (e.g. a rule names a model the batch did not run)."""


@dataclass(frozen=True)
class ModelResult:
    score: float | None = None  # 0..1 (or any scale, the same for every model)
    total_s: float | None = None  # latency of the whole answer
    cost: float | None = None  # None = not priced (a local model)


@dataclass(frozen=True)
class PromptRow:
    id: str
    prompt: str
    category: str = ""
    prompt_tokens: int | None = None  # None: the rules count by approximation
    anomalies: tuple[str, ...] | None = None  # anomaly kinds; None: approximated from the text
    results: dict[str, ModelResult] = field(default_factory=dict)  # model id -> its result

    def facts(self) -> PromptFacts:
        return PromptFacts(self.prompt, self.category, self.prompt_tokens, self.anomalies)


@dataclass(frozen=True)
class ResultTable:
    rows: tuple[PromptRow, ...]

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(m for r in self.rows for m in r.results))

    @classmethod
    def from_dict(cls, data: dict) -> ResultTable:
        """From {"rows": [{"id", "prompt", "category", "prompt_tokens", "anomalies", "results": {model:
        {"score", "total_s", "cost"}}}]}: the shape to_dict writes (for files and the page)."""
        rows = []
        for i, raw in enumerate(data.get("rows", [])):
            try:
                results = {str(m): ModelResult(**r) for m, r in (raw.get("results") or {}).items()}
                anomalies = raw.get("anomalies")
                rows.append(PromptRow(
                    id=str(raw.get("id", i)), prompt=str(raw["prompt"]),
                    category=str(raw.get("category") or ""),
                    prompt_tokens=raw.get("prompt_tokens"),
                    anomalies=None if anomalies is None else tuple(anomalies), results=results,
                ))
            except (KeyError, TypeError, AttributeError) as exc:
                raise TableError(f"rows[{i}]: {exc}") from exc
        return cls(tuple(rows))

    def to_dict(self) -> dict:
        return {"rows": [asdict(r) for r in self.rows]}


def table_from_batch(items: Sequence, cells: Sequence, count_model: str | None = None) -> ResultTable:
    """A ResultTable from a saved batch's prompt items and result cells (playground/batch: PromptItem,
    summary.Cell; read by attribute, so this module does not import the batch package).

    Models are keyed by catalog id (a cell's label "1 · smollm2-135m" without its column number; a
    model in two columns keeps its full labels). A prompt's token count and anomaly kinds are those
    `count_model` saw (default: the first column that answered); note a batch's count is the
    templated prompt's. Cells not run (pending, failed) give no result; a zero cost counts as unpriced.
    """
    names = {c.column: c.model.split(" · ", 1)[-1] for c in cells if c.status in ("done", "error")}
    taken = list(names.values())
    keys = {col: (name if taken.count(name) == 1 else next(c.model for c in cells if c.column == col))
            for col, name in names.items()}
    by_prompt: dict[int, list] = {}
    for cell in cells:
        by_prompt.setdefault(cell.prompt_index, []).append(cell)
    rows = []
    for index, item in enumerate(items):
        answered = sorted((c for c in by_prompt.get(index, []) if c.column in keys
                           and c.status in ("done", "error")), key=lambda c: c.column)
        results = {keys[c.column]: ModelResult(c.score, c.total_s, c.cost_usd or None) for c in answered}
        counted = [c for c in answered if keys[c.column] == count_model] or answered[:1]
        rows.append(PromptRow(
            str(item.id), item.prompt, item.category or "",
            counted[0].prompt_tokens if counted else None,
            tuple(counted[0].anomalies) if counted else None, results))
    return ResultTable(tuple(rows))


# -- summaries -------------------------------------------------------------------------------


def p95(values: Sequence[float]) -> float | None:
    """95th percentile, linear interpolation between closest ranks (numpy's default); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = 0.95 * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Summary:
    """One policy over the whole set: a rule set, or "all to one model"."""

    label: str
    prompts: int
    mean_score: float | None
    p95_total_s: float | None
    cost: float | None
    unscored: int = 0  # answers without a score, left out of mean_score
    shares: dict[str, float] = field(default_factory=dict)  # model -> share of prompts sent to it


def summarize(label: str, picks: Sequence[ModelResult | None], models: Sequence[str]) -> Summary:
    scores = [p.score for p in picks if p is not None and p.score is not None]
    latencies = [p.total_s for p in picks if p is not None and p.total_s is not None]
    costs = [p.cost for p in picks if p is not None and p.cost is not None]
    n = len(picks)
    shares = {m: models.count(m) / n for m in dict.fromkeys(models)} if n else {}
    return Summary(label, n, sum(scores) / len(scores) if scores else None, p95(latencies),
                   sum(costs) if costs else None, n - len(scores), shares)


@dataclass(frozen=True)
class Assignment:
    prompt_id: str
    model: str
    rule: int | None  # None = the default
    reason: str
    result: ModelResult | None  # the picked model's result on this prompt; None if it has none


@dataclass(frozen=True)
class Preview:
    assignments: list[Assignment]
    routed: Summary  # the rules
    baselines: dict[str, Summary]  # "all to each model", every model of the table
    approximate: list[str]  # facts approximated on some prompt (prompt_tokens, anomalies)

    def to_dict(self) -> dict:
        return {"assignments": [asdict(a) for a in self.assignments], "routed": asdict(self.routed),
                "baselines": {m: asdict(s) for m, s in self.baselines.items()},
                "approximate": self.approximate}


def preview(rules: RuleSet, table: ResultTable, count_tokens: Callable[[str], int] | None = None,
            budget: TimeBudget | None = None) -> Preview:
    """Which model each prompt goes to (and which rule sent it), and the rules against "all to X".

    The rules' patterns share one `budget` (default PREVIEW_BUDGET_S) over the whole table, so a
    pattern that backtracks costs seconds in all, not seconds per prompt; RuleTimeout names the
    rule and the prompt.
    """
    budget = budget or TimeBudget(PREVIEW_BUDGET_S)
    known = table.models
    missing = [m for m in rules.models() if m not in known]
    if missing:
        raise TableError(f"the rules name {', '.join(map(repr, missing))}, which these results do not have "
                         f"(models here: {', '.join(known) or 'none'})")
    assignments: list[Assignment] = []
    approximate: list[str] = []
    for row in table.rows:
        try:
            decision: Decision = route(rules, row.facts(), count_tokens, budget)
        except RuleTimeout as exc:
            raise RuleTimeout(f"prompt {row.id[:40]!r}: {exc}") from exc
        approximate.extend(decision.approximate)
        assignments.append(Assignment(row.id, decision.model, decision.rule, decision.reason,
                                      row.results.get(decision.model)))
    routed = summarize("rules", [a.result for a in assignments], [a.model for a in assignments])
    baselines = {m: summarize(f"all to {m}", [r.results.get(m) for r in table.rows], [m] * len(table.rows))
                 for m in known}
    return Preview(assignments, routed, baselines, list(dict.fromkeys(approximate)))


# -- the threshold sweep ---------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPoint:
    threshold: float  # prompts whose router score is >= threshold go to the strong model
    strong_share: float
    quality: float  # mean score of the routed answers
    pgr: float | None  # performance gap recovered: (quality - weak) / (strong - weak)


@dataclass(frozen=True)
class Sweep:
    strong: str
    weak: str
    router: str  # what the router score is: "prompt_tokens", "margin", or a caller's label
    points: list[SweepPoint]  # by strong_share, from 0 (all weak) to 1 (all strong)
    weak_quality: float
    strong_quality: float
    apgr: float | None  # area under pgr against strong share; None when the two models tie
    chosen: SweepPoint | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def apgr(points: Sequence[tuple[float, float]]) -> float:
    """Area under (strong share, performance gap recovered) from share 0 to 1, trapezoids between points.

    RouteLLM's summary of a router: 1.0 = all of the strong model's quality at no strong calls,
    0.5 = what a random router gets (the straight line between the two models), 0 = no better
    than the weak model alone. The curve is taken flat beyond its first and last points.
    """
    pts = sorted(points)
    if not pts:
        raise ValueError("no points")
    area = pts[0][0] * pts[0][1] + (1 - pts[-1][0]) * pts[-1][1]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        area += (x1 - x0) * (y0 + y1) / 2
    return area


def router_scores(table: ResultTable, kind: str, strong: str, weak: str,
                  count_tokens: Callable[[str], int] | None = None) -> dict[str, float]:
    """A router score per prompt id (higher = send to the strong model):
    - "prompt_tokens": the prompt's length in tokens (long prompts to the strong model; the
      threshold is a `prompt_tokens_below` rule for the weak one);
    - "margin": the strong model's score minus the weak one's on that prompt. It is measured after
      the fact, so it is the ceiling a router could reach on this set (an oracle), not a rule.
    """
    from playground.routing.rules import approx_tokens

    count = count_tokens or approx_tokens
    if kind == "prompt_tokens":
        return {r.id: float(r.prompt_tokens if r.prompt_tokens is not None else count(r.prompt))
                for r in table.rows}
    if kind == "margin":
        return {r.id: _score(r, strong) - _score(r, weak) for r in table.rows}
    raise ValueError(f"unknown router score {kind!r} (use prompt_tokens or margin)")


def _score(row: PromptRow, model: str) -> float:
    """A missing score counts as 0 in the sweep (a failed answer is a wrong one)."""
    result = row.results.get(model)
    return result.score if result is not None and result.score is not None else 0.0


def sweep(table: ResultTable, strong: str, weak: str, scores: dict[str, float] | str = "prompt_tokens",
          chosen: float | None = None, count_tokens: Callable[[str], int] | None = None) -> Sweep:
    """Quality against the share of prompts sent to the strong model, over every threshold.

    scores: a router score per prompt id, or the name of one (see router_scores). Each distinct
    score is a threshold (prompts scoring >= it go strong), plus one above them all (all weak).
    Prompts with equal scores move together. chosen: a threshold to mark (the point it gives).
    """
    for model in (strong, weak):
        if model not in table.models:
            raise TableError(f"no results for {model!r} (models here: {', '.join(table.models) or 'none'})")
    if not table.rows:
        raise TableError("no prompts to sweep over")
    label = scores if isinstance(scores, str) else "custom"
    if isinstance(scores, str):
        scores = router_scores(table, scores, strong, weak, count_tokens)
    rows = table.rows
    weak_q = sum(_score(r, weak) for r in rows) / len(rows)
    strong_q = sum(_score(r, strong) for r in rows) / len(rows)
    gap = strong_q - weak_q

    def point(threshold: float) -> SweepPoint:
        to_strong = [scores[r.id] >= threshold for r in rows]
        picked = [_score(r, strong if s else weak) for r, s in zip(rows, to_strong, strict=True)]
        quality = sum(picked) / len(rows)
        pgr = (quality - weak_q) / gap if gap else None
        return SweepPoint(threshold, sum(to_strong) / len(rows), quality, pgr)

    values = sorted(set(scores[r.id] for r in rows))
    thresholds = [*values, values[-1] + 1]  # the last: nothing reaches it, all weak
    points = sorted((point(t) for t in thresholds), key=lambda p: (p.strong_share, -p.threshold))
    area = apgr([(p.strong_share, p.pgr) for p in points]) if gap else None  # type: ignore[misc]
    return Sweep(strong, weak, label, points, weak_q, strong_q, area,
                 point(chosen) if chosen is not None else None)
