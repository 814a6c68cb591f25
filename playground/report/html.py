"""A run as one self-contained HTML file: no script, nothing fetched, everything typed escaped.

The page holds an inline <style> and inline SVG charts only; a Content-Security-Policy
meta tag forbids scripts and remote loads as a second line of defence. Every string that
came from a user, a model, a server or a search result goes through html.escape.
"""

from __future__ import annotations

import html
import math

from playground.inspect.attention import view as attention_view
from playground.inspect.diff import diff_stats
from playground.record import ModelRun, Run
from playground.report import common as C
from playground.report import svg
from playground.system_prompts import describe
from playground.wording import plural

MAX_PROMPT_CHIPS = 3000  # prompt tokens shown as chips per column; the rest are counted
MAX_PROB_ROWS = 400  # output tokens listed in a column's probability table
HEATMAP_TOKENS = 32  # last positions of the attention window drawn as a heatmap

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 16px 24px 48px; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px;
  margin-top: 2em; } h3 { margin-bottom: 0.3em; }
.muted { color: #666; } .error { color: #b00020; font-weight: 600; } .warn { color: #8a5300; }
pre.text { white-space: pre-wrap; word-break: break-word; background: #f6f7f9; border: 1px solid #e1e4e8;
  border-radius: 6px; padding: 10px 12px; font-size: 0.92em; max-height: 40em; overflow: auto; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 0.9em; }
th, td { border: 1px solid #dde; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f4f7; } td { overflow-wrap: anywhere; } .card table { width: 100%; }
.card th { width: 34%; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 16px; }
.card { border: 1px solid #dde; border-radius: 8px; padding: 8px 14px; min-width: 0; }
details > summary { cursor: pointer; font-weight: 600; margin: 6px 0; }
.chips { display: flex; flex-wrap: wrap; gap: 3px 0; line-height: 1.6; font-family: ui-monospace, monospace;
  font-size: 0.85em; max-width: 100%; }
.tok { border: 1px solid #b7c7e6; background: #eef3fb; border-radius: 3px; padding: 0 2px; margin: 0 1px;
  white-space: pre-wrap; overflow-wrap: anywhere; max-width: 100%; }
.tok.special { border-color: #c62828; background: #fdecea; color: #8e1c1c; font-weight: 600; }
.tok.anomaly { outline: 2px solid #e69f00; }
.legend span { margin-right: 12px; }
ins { background: rgba(0,114,178,0.18); } del { background: rgba(213,94,0,0.18); }
.pg-diff { white-space: pre-wrap; background: #fafafa; border: 1px solid #eee; padding: 8px;
  border-radius: 6px; }
svg.chart { max-width: 100%; height: auto; display: block; margin: 8px 0; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; }
"""


def e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(rows: list[tuple[str, str]], head: tuple[str, str] | None = None) -> str:
    thead = f"<tr><th>{e(head[0])}</th><th>{e(head[1])}</th></tr>" if head else ""
    body = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    return f"<table>{thead}{body}</table>"


def _pre(text: str, cls: str = "text") -> str:
    return f'<pre class="{cls}">{e(text)}</pre>'


def _none(message: str) -> str:
    return f'<p class="muted">{e(message)}</p>'


def render_html(run: Run, origin: str = "cli") -> str:
    """One self-contained page; `origin` ("page" or "cli") says who made it, in the header."""
    sections = [
        _header(run, origin), _prompt(run), _summary(run), _columns(run), _tokens(run), _probabilities(run),
        _diffs(run), _grounding(run), _attention(run),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{e(C.report_title(run))}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )


def _header(run: Run, origin: str) -> str:
    models = ", ".join(m.identity.name or m.identity.catalog_id for m in run.models) or "no models"
    return (f"<header><h1>{e(C.report_title(run))}</h1>"
            f'<p class="muted">Saved {e(C.when(run.created_at))} · schema version {e(run.schema_version)} · '
            f"{plural(len(run.models), 'column')}: {e(models)}. Drawn from the saved run record by "
            f"{e(C.made_by(origin))}; this file runs no script and loads nothing.</p></header>")


def _prompt(run: Run) -> str:
    parts = ["<section id=\"prompt\"><h2>Prompt</h2>"]
    if run.system_prompt:
        parts.append(f"<h3>System prompt</h3>{_pre(run.system_prompt)}")
    else:
        parts.append(_none("No system prompt."))
    for m in run.models:
        if m.system_prompt is not None:
            parts.append(f"<h3>System prompt of {e(C.label(m))}</h3>{_pre(m.system_prompt)}")
        elif (found := describe(run, m)).source == "template":  # none typed: the chat template wrote one
            parts.append(f"<h3>System prompt of {e(C.label(m))}: its chat template's default</h3>"
                         f"{_pre(found.text)}")
    for number, turn in enumerate(run.history, start=1):  # a conversation: the earlier turns first
        parts.append(f"<h3>Turn {number}</h3>{_pre(turn.prompt)}")
        for m in turn.models:
            parts.append(f"<h4>{e(C.label(m))} answered</h4>{_pre(m.text or m.error or '(no output)')}")
    if run.history:
        parts.append(f"<h3>Turn {len(run.history) + 1} (this run)</h3>{_pre(run.prompt)}")
    else:
        parts.append(f"<h3>Prompt</h3>{_pre(run.prompt)}")
    if run.specials_as_text:
        parts.append(_none("Special-token strings in the typed text were tokenized as plain text."))
    return "".join(parts) + "</section>"


def _summary(run: Run) -> str:
    if not run.models:
        return "<section id=\"summary\"><h2>Summary</h2>" + _none("This run has no columns.") + "</section>"
    head = ("<tr><th>column</th><th>model</th><th>device / engine</th><th>finish</th><th>tokens in → out</th>"
            "<th>TTFT</th><th>tok/s</th><th>total</th><th>cost</th></tr>")
    rows = []
    for m in run.models:
        x = m.metrics
        rows.append(
            f"<tr><td>{e(C.label(m))}</td><td>{e(m.identity.name or m.identity.catalog_id)}</td>"
            f"<td>{e(C.engine_line(m))}</td><td>{e(C.outcome(m))}</td>"
            f'<td class="num">{x.prompt_tokens:,} → {x.output_tokens:,}</td>'
            f'<td class="num">{f"{x.ttft_s:.3f} s" if x.output_tokens else "—"}</td>'
            f'<td class="num">{f"{x.decode_tok_s:.1f}" if x.decode_tok_s else "—"}</td>'
            f'<td class="num">{f"{x.total_s:.2f} s" if x.output_tokens else "—"}</td>'
            f'<td class="num">{e(C.cost(x.cost_usd)) if x.cost_usd else "—"}</td></tr>')
    timed = [m for m in run.models if m.metrics.output_tokens]
    charts = ""
    if timed:
        labels = [C.label(m) for m in timed]
        speeds = [m.metrics.decode_tok_s for m in timed]
        charts = ('<div class="charts">'
                  + svg.bar_chart("Decode speed (tok/s)", labels, speeds, "tok/s")
                  + svg.bar_chart("Time to first token (s)", labels, [m.metrics.ttft_s for m in timed], "s")
                  + "</div>")
    else:
        charts = _none("No column produced tokens, so there are no speed charts.")
    return f'<section id="summary"><h2>Summary</h2><table>{head}{"".join(rows)}</table>{charts}</section>'


def _columns(run: Run) -> str:
    cards = []
    for m in run.models:
        parts = [f'<div class="card" id="column-{m.column}"><h3>{e(C.label(m))}</h3>']
        if m.error:
            parts.append(f'<p class="error" role="alert">Error: {e(m.error)}</p>')
        notes = C.notices(m)
        if notes:
            parts.append('<ul class="warn">' + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
        parts.append("<h4>Output</h4>")
        parts.append(_pre(m.text) if m.text else _none("(no output)"))
        parts.append("<details><summary>Metrics</summary>" + _table(C.metric_rows(m)) + "</details>")
        parts.append("<details><summary>Model identity</summary>" + _table(C.identity_rows(m)) + "</details>")
        parts.append("<details><summary>Parameters</summary>" + _table(C.param_rows(m.params)) + "</details>")
        cards.append("".join(parts) + "</div>")
    body = f'<div class="cards">{"".join(cards)}</div>' if cards else _none("This run has no columns.")
    return f'<section id="columns"><h2>Columns</h2>{body}</section>'


def _chip(text: str, title: str, cls: str) -> str:
    return f'<span class="{cls}" title="{e(title)}">{e(C.visible(text) or "∅")}</span>'


def _tokens(run: Run) -> str:
    parts = ['<section id="tokens"><h2>Prompt tokens</h2>',
             "<p class=\"muted\">What each model was fed, template and all. The user's prompt alone, "
             "through each model's tokenizer:</p>"]
    head = ("<tr><th>column</th><th>prompt tokens (templated)</th><th>user text tokens</th><th>chars / token"
            "</th><th>control tokens</th><th>context window</th><th>share used</th><th>anomalies</th></tr>")
    rows = []
    for m in run.models:
        c = C.token_counts(run, m)
        rows.append(
            f"<tr><td>{e(C.label(m))}</td><td class=\"num\">{c.prompt_tokens:,}</td>"
            f'<td class="num">{f"{c.user_text_tokens:,}" if c.user_text_tokens else "—"}</td>'
            f'<td class="num">{f"{c.chars_per_token:.2f}" if c.chars_per_token else "—"}</td>'
            f'<td class="num">{c.control_tokens:,}</td>'
            f'<td class="num">{f"{c.context_window:,}" if c.context_window else "—"}</td>'
            f'<td class="num">{f"{c.context_share:.1%}" if c.context_share else "—"}</td>'
            f'<td class="num">{c.anomalies}</td></tr>')
    parts.append(f"<table>{head}{''.join(rows)}</table>")
    parts.append('<p class="legend muted"><span><span class="tok">prompt token</span></span>'
                 '<span><span class="tok special">control token</span></span>'
                 '<span><span class="tok anomaly">flagged</span></span>'
                 "<span>· space, → tab, ↵ newline</span></p>")
    for m in run.models:
        parts.append(f"<h3>{e(C.label(m))}</h3>")
        if m.anomalies:
            parts.append('<ul class="warn">' + "".join(
                f"<li>{e(a.severity)} ({e(a.kind)}"
                + (f", token {a.position}" if a.position >= 0 else "") + f"): {e(a.message)}</li>"
                for a in m.anomalies) + "</ul>")
        if not m.prompt_pieces:
            why = ("the record holds token ids only" if m.prompt_token_ids
                   else "no prompt tokens were recorded for this column")
            parts.append(_none(f"No token breakdown: {why}."))
            continue
        flagged = C.anomaly_positions(m)
        chips = []
        for i, p in enumerate(m.prompt_pieces[:MAX_PROMPT_CHIPS]):
            cls = "tok" + (" special" if p.special else "") + (" anomaly" if i in flagged else "")
            title = f"#{i} id {p.token_id} {p.raw!r}" + (f" — {flagged[i]}" if i in flagged else "")
            chips.append(_chip(p.text if not p.special else p.raw, title, cls))
        more = len(m.prompt_pieces) - MAX_PROMPT_CHIPS
        tail = _none(f"… and {more:,} more tokens (not shown).") if more > 0 else ""
        parts.append(f'<details open><summary>{len(m.prompt_pieces):,} tokens</summary>'
                     f'<div class="chips">{"".join(chips)}</div>{tail}</details>')
    return "".join(parts) + "</section>"


def _probabilities(run: Run) -> str:
    parts = ['<section id="probabilities"><h2>Token probabilities</h2>']
    with_probs = [m for m in run.models if C.has_probs(m)]
    if not with_probs:
        parts.append(_none("This run has no token probabilities (no column returned log-probabilities)."))
        return "".join(parts) + "</section>"
    series = [(C.label(m), [C.finite(s.logprob) for s in m.steps]) for m in with_probs]
    parts.append(svg.line_chart("Log-probability of each output token", series, "logprob"))
    for m in run.models:
        parts.append(f"<h3>{e(C.label(m))}</h3>")
        summary = C.prob_summary(m)
        if summary is None:
            why = (m.capabilities.logprobs_note or "not returned") if not m.capabilities.logprobs else (
                "no output tokens")
            parts.append(_none(f"No token probabilities for this column: {why}."))
            continue
        lowest = ", ".join(f"{C.visible(s.text)!r} ({s.logprob:.2f}, token {i + 1})"
                           for i, s in summary.lowest)
        parts.append(f"<p>{summary.tokens:,} tokens · mean logprob {summary.mean_logprob:.3f} · "
                     f"perplexity {summary.perplexity:.2f} · least confident: {e(lowest)}</p>")
        rows = []
        for i, s in enumerate(m.steps[:MAX_PROB_ROWS]):
            alts = " · ".join(f"{C.visible(a.text)!r} {a.logprob:.2f}"
                              for a in s.top if a.token_id != s.token_id)
            special = " special" if s.special else ""
            rows.append(f'<tr><td class="num">{i + 1}</td><td><span class="tok{special}">'
                        f"{e(C.visible(s.text) or '∅')}</span></td><td class=\"num\">{s.logprob:.3f}</td>"
                        f'<td class="num">{math.exp(max(s.logprob, -700)):.1%}</td><td>{e(alts)}</td></tr>')
        more = len(m.steps) - MAX_PROB_ROWS
        tail = _none(f"… and {more:,} more tokens (not listed).") if more > 0 else ""
        parts.append("<details><summary>Every output token with its top alternatives</summary>"
                     "<table><tr><th>#</th><th>token</th><th>logprob</th><th>p</th><th>alternatives</th></tr>"
                     f"{''.join(rows)}</table>{tail}</details>")
    return "".join(parts) + "</section>"


def _diffs(run: Run) -> str:
    parts = ['<section id="diffs"><h2>Compare outputs</h2>']
    comparison = C.compare(run)
    if comparison.baseline is None or not comparison.diffs:
        why = "only one column" if len(run.models) < 2 else "no column answered"
        parts.append(_none(f"Nothing to compare: {why}."))
        return "".join(parts) + "</section>"
    parts.append(f"<p>Word diff of each column against {e(C.label(comparison.baseline))}: "
                 "<ins>+ inserted</ins>, <del>− deleted</del>.</p>")
    for m, diff in comparison.diffs:
        parts.append(f"<h3>{e(C.label(m))}</h3>")
        if diff.error:
            parts.append(_none(diff.error))
            continue
        st = diff_stats(diff.ops)
        parts.append(f"<p class=\"muted\">similarity {st['similarity']:.0%} · {st['words_equal']} equal, "
                     f"{st['words_inserted']} inserted, {st['words_deleted']} deleted words</p>")
        parts.append(diff.html())  # inspect.diff escapes every piece of text
    agreement = comparison.agreement
    if agreement is not None and agreement.labels:
        head = "<tr><th></th>" + "".join(f"<th>{e(lab)}</th>" for lab in agreement.labels) + "</tr>"
        body = "".join(
            f"<tr><th>{e(lab)}</th>" + "".join(f'<td class="num">{v:.2f}</td>' for v in row) + "</tr>"
            for lab, row in zip(agreement.labels, agreement.lexical, strict=True))
        parts.append(f"<h3>Agreement</h3><p class=\"muted\">{e(agreement.lexical_method)}</p>"
                     f"<table>{head}{body}</table>")
        if agreement.skipped:
            parts.append(_none("Left out: " + "; ".join(agreement.skipped)))
    return "".join(parts) + "</section>"


def _link(url: str, title: str) -> str:
    label = e(title or url)
    if url.lower().startswith(("http://", "https://")):
        return f'<a href="{e(url)}" rel="noopener noreferrer">{label}</a> <span class="muted">{e(url)}</span>'
    return f'{label} <span class="muted">{e(url)}</span>'


def _grounding(run: Run) -> str:
    parts = ['<section id="grounding"><h2>Grounding</h2>']
    snap = run.search
    if snap is None:
        parts.append(_none("This run was not grounded (no search, no sources)."))
        return "".join(parts) + "</section>"
    parts.append(f"<p class=\"muted\">{e(snap.provider)} search for “{e(snap.query)}” at "
                 f"{e(C.when(snap.created_at))}; "
                 "every model got the same numbered sources.</p>")
    if snap.notice:
        parts.append(f'<p class="warn">{e(snap.notice)}</p>')
    if snap.results:
        items = "".join(f'<li value="{n}">{_link(s.url, s.title)}<div class="muted">{e(s.snippet)}</div></li>'
                        for n, s in enumerate(snap.results, 1))
        parts.append(f"<ol>{items}</ol>")
    else:
        parts.append(_none("The search returned no sources."))
    rows = []
    for m in run.models:
        cited = ", ".join(f"[{n}]" for n in m.cited) or "no source"
        row = f"<li>{e(C.label(m))}: cites {e(cited)}"
        if m.invalid_citations:
            bad = ", ".join(f"[{n}]" for n in m.invalid_citations)
            row += f' <span class="error">cites sources that do not exist: {e(bad)}</span>'
        if m.grounding_notice:
            row += f' <span class="muted">({e(m.grounding_notice)})</span>'
        rows.append(row + "</li>")
    parts.append(f"<h3>Citations</h3><ul>{''.join(rows)}</ul>")
    return "".join(parts) + "</section>"


def _heatmap(m: ModelRun) -> str:
    cap = m.attention
    assert cap is not None
    try:
        matrix = attention_view(cap, cap.layers[-1], "mean over heads")
    except (ValueError, IndexError) as exc:
        return _none(f"The attention data could not be read: {exc}")
    n = min(HEATMAP_TOKENS, cap.tokens)
    sub = matrix[-n:, -n:].tolist()
    pieces = [p.raw for p in m.prompt_pieces] + [s.text for s in m.steps]
    first = cap.start + cap.tokens - n
    labels = [C.visible(pieces[i]) if i < len(pieces) else str(i) for i in range(first, first + n)]
    title = (f"{C.label(m)}: layer {cap.layers[-1]}, mean over heads, last {n} positions "
             "(query down, key across; darker = more)")
    return svg.heatmap(title, sub, labels)


def _attention(run: Run) -> str:
    parts = ['<section id="attention"><h2>Attention</h2>']
    captured = [m for m in run.models if m.attention is not None]
    if not captured:
        why = "capture was off for this run" if not run.capture_attention else "no column captured attention"
        notes = "; ".join(f"{C.label(m)}: {m.attention_note}" for m in run.models if m.attention_note)
        parts.append(_none(f"This run has no attention ({why})." + (f" {notes}" if notes else "")))
        return "".join(parts) + "</section>"
    sinks = [(C.label(m), m.attention.sink_first) for m in captured if m.attention.sink_first]
    if sinks:
        parts.append(svg.line_chart("Attention mass on the first token, per layer", sinks, "mean mass",
                                    x_label="layer"))
    for m in run.models:
        cap = m.attention
        parts.append(f"<h3>{e(C.label(m))}</h3>")
        if cap is None:
            parts.append(_none(f"No attention: {m.attention_note or 'not captured'}."))
            continue
        layers = ", ".join(map(str, cap.layers))
        parts.append(f"<p class=\"muted\">layers {e(layers)} of {cap.num_layers or '?'}, "
                     f"{cap.heads} heads, positions {cap.start}..{cap.start + cap.tokens - 1}"
                     + (f" · {e(cap.notice)}" if cap.notice else "") + "</p>")
        parts.append(_heatmap(m))
    return "".join(parts) + "</section>"
