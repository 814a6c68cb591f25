"""A run as GitHub-flavoured Markdown, for pasting into an issue tracker.

Text a user or a model typed goes either into a fenced code block whose fence is longer
than any run of backticks in the text (so nothing can close it early), or, inline, through
`inline()`, which escapes HTML and Markdown punctuation and keeps it on one line.
"""

from __future__ import annotations

import html
import re

from playground.controls import strip_controls
from playground.inspect.diff import DELETE, INSERT, diff_stats
from playground.record import Run
from playground.report import common as C
from playground.system_prompts import describe
from playground.wording import plural

MAX_CHANGES = 3  # changed stretches quoted per column in the diff summary
_BACKTICKS = re.compile(r"`+")
# Markdown that can start inside a line: emphasis, code, links/images ("![" needs "["), tables, strike.
# Line-start syntax (#, -, 1.) never applies: inline text always follows other text on its line.
_MD_PUNCT = re.compile(r"([\\`*_\[\]|~])")


def fence(text: str) -> str:
    """A backtick fence longer than the longest backtick run in `text` (at least three)."""
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
    return "`" * max(3, longest + 1)


def code_block(text: str, info: str = "text") -> str:
    marks = fence(text)
    body = text if text.endswith("\n") else text + "\n"
    return f"{marks}{info}\n{body}{marks}"


def inline(text: object, limit: int = 200) -> str:
    """Typed text made inert for one line of Markdown (a table cell, a list item)."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return _MD_PUNCT.sub(r"\\\1", html.escape(flat, quote=False))


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(run: Run, origin: str = "cli") -> str:
    """The report as Markdown; `origin` ("page" or "cli") says who made it, in its first line."""
    parts = [
        f"# {inline(C.report_title(run))}",
        f"Saved {C.when(run.created_at)} · {plural(len(run.models), 'column')} · "
        f"schema version {run.schema_version}. Made from the saved run record by "
        f"{C.made_by(origin, markdown=True)}.",
        *_prompt(run),
        *_summary(run),
        *_columns(run),
        *_tokens(run),
        *_probabilities(run),
        *_diffs(run),
        *_grounding(run),
        *_attention(run),
    ]
    return strip_controls("\n\n".join(parts) + "\n")  # an escape in a saved answer never reaches the .md


def _prompt(run: Run) -> list[str]:
    out = ["## Prompt"]
    if run.system_prompt:
        out += ["**System prompt**", code_block(run.system_prompt)]
    else:
        out.append("No system prompt.")
    for m in run.models:
        if m.system_prompt is not None:
            out += [f"**System prompt of {inline(C.label(m))}**", code_block(m.system_prompt)]
        elif (found := describe(run, m)).source == "template":  # none typed: the chat template wrote one
            out += [f"**System prompt of {inline(C.label(m))}: its chat template's default**",
                    code_block(found.text)]
    for number, turn in enumerate(run.history, start=1):  # a conversation: the earlier turns first
        out += [f"**Turn {number}**", code_block(turn.prompt)]
        for m in turn.models:
            out += [f"*{inline(C.label(m))} answered*", code_block(m.text or m.error or "(no output)")]
    title = f"**Turn {len(run.history) + 1} (this run)**" if run.history else "**Prompt**"
    out += [title, code_block(run.prompt)]
    if run.specials_as_text:
        out.append("Special-token strings in the typed text were tokenized as plain text.")
    return out


def _summary(run: Run) -> list[str]:
    if not run.models:
        return ["## Summary", "This run has no columns."]
    rows = []
    for m in run.models:
        x = m.metrics
        rows.append(
            [
                inline(C.label(m)),
                inline(m.identity.name or m.identity.catalog_id),
                inline(C.engine_line(m)) or "—",
                inline(C.outcome(m)),
                f"{x.prompt_tokens:,} → {x.output_tokens:,}",
                f"{x.ttft_s:.3f} s" if x.output_tokens else "—",
                f"{x.decode_tok_s:.1f}" if x.decode_tok_s else "—",
                f"{x.total_s:.2f} s" if x.output_tokens else "—",
                inline(C.cost(x.cost_usd)) if x.cost_usd else "—",
            ]
        )
    head = [
        "column",
        "model",
        "device / engine",
        "finish",
        "tokens in → out",
        "TTFT",
        "tok/s",
        "total",
        "cost",
    ]
    return ["## Summary", _table(head, rows)]


def _columns(run: Run) -> list[str]:
    out = []
    for m in run.models:
        out.append(f"## {inline(C.label(m))}")
        out.append("- " + "\n- ".join(f"**{k}**: {inline(v, 400)}" for k, v in C.identity_rows(m)))
        out.append("**Parameters**: " + " · ".join(f"{k} {inline(v)}" for k, v in C.param_rows(m.params)))
        out.append(_table(["metric", "value"], [[inline(k), inline(v)] for k, v in C.metric_rows(m)]))
        quoted = ([f"> **Error:** {inline(m.error, 2000)}"] if m.error else []) + [
            f"> ⚠ {inline(n, 1000)}" for n in C.notices(m)
        ]
        if quoted:
            out.append("\n>\n".join(quoted))
        out += ["**Output**", code_block(m.text) if m.text else "_(no output)_"]
    return out


def _tokens(run: Run) -> list[str]:
    out = [
        "## Prompt tokens",
        "What each model was fed (template included), and the user's prompt alone "
        "through each model's tokenizer.",
    ]
    rows = []
    for m in run.models:
        c = C.token_counts(run, m)
        rows.append(
            [
                inline(C.label(m)),
                f"{c.prompt_tokens:,}",
                f"{c.user_text_tokens:,}" if c.user_text_tokens else "—",
                f"{c.chars_per_token:.2f}" if c.chars_per_token else "—",
                f"{c.control_tokens:,}",
                f"{c.context_window:,}" if c.context_window else "—",
                f"{c.context_share:.1%}" if c.context_share else "—",
                str(c.anomalies),
            ]
        )
    if rows:
        out.append(
            _table(
                [
                    "column",
                    "prompt tokens (templated)",
                    "user text tokens",
                    "chars / token",
                    "control tokens",
                    "context window",
                    "share used",
                    "anomalies",
                ],
                rows,
            )
        )
    flagged = [
        f"- **{inline(C.label(m))}** {inline(a.severity)} ({inline(a.kind)}"
        + (f", token {a.position}" if a.position >= 0 else "")
        + f"): {inline(a.message, 1000)}"
        for m in run.models
        for a in m.anomalies
    ]
    out.append("\n".join(flagged) if flagged else "No anomalies were flagged in any column's prompt.")
    return out


def _probabilities(run: Run) -> list[str]:
    out = ["## Token probabilities"]
    if not any(C.has_probs(m) for m in run.models):
        return [*out, "This run has no token probabilities (no column returned log-probabilities)."]
    rows = []
    for m in run.models:
        s = C.prob_summary(m)
        if s is None:
            why = m.capabilities.logprobs_note or (
                "not returned" if not m.capabilities.logprobs else "no output"
            )
            rows.append([inline(C.label(m)), "—", "—", "—", inline(why)])
            continue
        lowest = ", ".join(f"{C.visible(t.text)!r} {t.logprob:.2f}" for _, t in s.lowest[:3])
        rows.append(
            [
                inline(C.label(m)),
                f"{s.tokens:,}",
                f"{s.mean_logprob:.3f}",
                f"{s.perplexity:.2f}",
                inline(lowest),
            ]
        )
    return [*out, _table(["column", "tokens", "mean logprob", "perplexity", "least confident"], rows)]


def _diffs(run: Run) -> list[str]:
    out = ["## Differences"]
    comparison = C.compare(run)
    if comparison.baseline is None or not comparison.diffs:
        why = "only one column" if len(run.models) < 2 else "no column answered"
        return [*out, f"Nothing to compare: {why}."]
    base = comparison.baseline
    agreement = comparison.agreement
    index = {lab: i for i, lab in enumerate(agreement.labels)} if agreement else {}
    rows, changes = [], []
    for m, diff in comparison.diffs:
        if diff.error:
            rows.append([inline(C.label(m)), "—", "—", "—", "—", "—"])
            changes.append(f"- **{inline(C.label(m))}**: {inline(diff.error, 500)}")
            continue
        st = diff_stats(diff.ops)
        lexical = "—"
        if agreement and C.label(m) in index and C.label(base) in index:
            lexical = f"{agreement.lexical[index[C.label(base)]][index[C.label(m)]]:.2f}"
        rows.append(
            [
                inline(C.label(m)),
                f"{st['similarity']:.0%}",
                str(st["words_equal"]),
                str(st["words_inserted"]),
                str(st["words_deleted"]),
                lexical,
            ]
        )
        quoted = []
        ops = diff.ops
        i = 0
        while i < len(ops) and len(quoted) < MAX_CHANGES:
            if ops[i].kind in (DELETE, INSERT):
                removed = ops[i].text if ops[i].kind == DELETE else ""
                added = ops[i].text if ops[i].kind == INSERT else ""
                if ops[i].kind == DELETE and i + 1 < len(ops) and ops[i + 1].kind == INSERT:
                    added = ops[i + 1].text
                    i += 1
                quoted.append(f"−“{inline(removed, 80)}” +“{inline(added, 80)}”")
            i += 1
        if quoted:
            changes.append(f"- **{inline(C.label(m))}**: " + "; ".join(quoted))
        else:
            changes.append(f"- **{inline(C.label(m))}**: identical output")
    return [
        *out,
        f"Word diff of each column against **{inline(C.label(base))}** "
        "(similarity = 2·equal words / all words; lexical = rapidfuzz character similarity).",
        _table(["column", "similarity", "equal", "inserted", "deleted", "lexical"], rows),
        "\n".join(changes),
    ]


def _grounding(run: Run) -> list[str]:
    out = ["## Grounding"]
    snap = run.search
    if snap is None:
        return [*out, "This run was not grounded (no search, no sources)."]
    out.append(
        f"{inline(snap.provider)} search for “{inline(snap.query)}” at {C.when(snap.created_at)}; "
        "every model got the same numbered sources."
    )
    if snap.notice:
        out.append(f"> ⚠ {inline(snap.notice, 1000)}")
    if snap.results:
        out.append(
            "\n".join(
                f"{n}. {inline(s.title or s.url)} — {inline(s.url, 500)}"
                for n, s in enumerate(snap.results, 1)
            )
        )
    else:
        out.append("The search returned no sources.")
    lines = []
    for m in run.models:
        line = f"- **{inline(C.label(m))}** cites " + (
            ", ".join(f"\\[{n}\\]" for n in m.cited) or "no source"
        )
        if m.invalid_citations:
            line += " · ⚠ cites sources that do not exist: " + ", ".join(
                f"\\[{n}\\]" for n in m.invalid_citations
            )
        lines.append(line)
    return [*out, "\n".join(lines)]


def _attention(run: Run) -> list[str]:
    out = ["## Attention"]
    if not any(m.attention for m in run.models):
        why = "capture was off for this run" if not run.capture_attention else "no column captured attention"
        return [*out, f"This run has no attention ({why})."]
    lines = []
    for m in run.models:
        cap = m.attention
        if cap is None:
            lines.append(
                f"- **{inline(C.label(m))}**: not captured ({inline(m.attention_note or 'no reason')})"
            )
        else:
            lines.append(
                f"- **{inline(C.label(m))}**: layers {', '.join(map(str, cap.layers))}, {cap.heads} heads, "
                f"positions {cap.start}..{cap.start + cap.tokens - 1} (see the HTML report or the app)"
            )
    return [*out, "\n".join(lines)]
