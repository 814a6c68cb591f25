"""Reports of a saved run: the HTML page (self-contained, no script, escaped) and the Markdown."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from html import escape as html_escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from sample_runs import make_run

from playground.record import (
    Anomaly,
    AttentionCapture,
    ColumnCapabilities,
    Run,
    SearchSnapshot,
    Source,
    TokenPiece,
)
from playground.report import ReportError, render_report, report_filename, report_format
from playground.report.markdown import code_block, fence, inline
from playground.sessions.store import SessionStore

REPO = Path(__file__).resolve().parent.parent
XSS = "<script>alert(1)</script><img src=x onerror=alert(1)>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
FENCED_OUTPUT = "Here is code:\n```python\nprint(1)\n```\nand a longer run ```` and `inline`.\n"
# Every tag the HTML report may contain: no script, iframe, object, img, link, form, base ...
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "section", "h1", "h2", "h3", "h4", "p", "pre",
    "table", "tr", "th", "td", "div", "span", "ul", "ol", "li", "details", "summary", "ins", "del", "a", "br",
    "svg", "rect", "line", "polyline", "circle", "text", "tspan",
}


def xss_run() -> Run:
    """Two columns with the payload in prompt, system prompt, output and model name."""
    run = make_run(prompt=f"Explain {XSS}", system_prompt=f"System {XSS}",
                   outputs=(f"Answer {XSS}", FENCED_OUTPUT))
    run.models[0].identity.name = f"model {XSS}"
    return run


def rich_run() -> Run:
    """Tokens with a control token and an anomaly, a failed column, a served column, grounding, attention."""
    run = make_run(outputs=("Paris is the capital [1].", "Paris [1] [7].", "x"))
    first, second, third = run.models
    first.prompt_pieces = [TokenPiece(1, "<|im_start|>", "<|im_start|>", True),
                           TokenPiece(2, "user", "user"), TokenPiece(3, "\n", "Ċ"),
                           TokenPiece(4, " What", "ĠWhat"), TokenPiece(5, "<|im_end|>", "<|im_end|>", True)]
    first.user_text_tokens = 7
    first.anomalies = [Anomaly("special_literal", "the typed text contains <|im_end|>", position=4)]
    first.cited = [1]
    layers, heads, tokens = [0, 1], 2, 4
    weights = np.tril(np.full((len(layers), heads, tokens, tokens), 0.25, dtype=np.float16))
    first.attention = AttentionCapture(layers, heads, 0, tokens, base64.b64encode(weights.tobytes()).decode(),
                                       num_layers=2, sink_first=[0.5, 0.7], sink_special=[0.1, 0.2])
    second.capabilities = ColumnCapabilities(
        logprobs=False, logprobs_note="this server did not return logprobs", attention=False, memory=False)
    second.identity.engine = "openai-compatible server"
    second.metrics.cost_usd = 0.0123
    second.cited, second.invalid_citations = [1], [7]
    second.attention_note = "attention: not available for served models"
    third.error, third.finish_reason, third.steps, third.text = "out of memory", "error", [], ""
    run.search = SearchSnapshot("capital of France", "local", 1_700_000_000.0,
                                [Source("Paris facts", "https://example.org/paris", "Paris is the capital.")])
    return run


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]


def parsed(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    return parser


# -- HTML -------------------------------------------------------------------------------------------------


def test_html_escapes_everything_typed_and_runs_no_script() -> None:
    page = render_report(xss_run(), "html")
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert page.count(ESCAPED) >= 4  # prompt, system prompt, output, model name (and more)
    tags = parsed(page)
    assert tags.tags <= ALLOWED_TAGS, tags.tags - ALLOWED_TAGS
    assert not [a for a in tags.attrs if a[1].startswith("on")], "no event handler attributes"
    assert not [a for a in tags.attrs if a[1] in ("src", "srcset", "background", "action", "formaction")]


def test_html_loads_nothing_from_outside() -> None:
    page = render_report(rich_run(), "html")
    tags = parsed(page)
    assert "link" not in tags.tags and "script" not in tags.tags
    assert "@import" not in page and "url(" not in page
    csp = [v for t, k, v in tags.attrs if t == "meta" and k == "content" and v and "default-src" in v]
    assert csp and "default-src 'none'" in csp[0] and "script-src" not in csp[0]
    links = [v for t, k, v in tags.attrs if k == "href"]
    assert links == ["https://example.org/paris"]  # a source link (never fetched: an <a>)
    assert all(v == "noopener noreferrer" for t, k, v in tags.attrs if t == "a" and k == "rel")


def test_html_holds_every_section_of_a_rich_run() -> None:
    run = rich_run()
    page = render_report(run, "html")
    for text in (run.prompt, "Be brief.", "smollm2-135m (Q4)", "/models/smollm2-135m.gguf", "chat template",
                 "Paris is the capital [1].", "TTFT", "27.5", "0.125 s", "$0.0123", "out of memory",
                 "this server did not return logprobs", "special_literal", "Paris facts",
                 "cites sources that do not exist: [7]", "Agreement", "temperature", "seed",
                 "layers 0, 1 of 2", "mean logprob", "perplexity"):
        assert run.prompt and (text in page or text.replace("&", "&amp;") in page), text
    assert page.count("<svg") >= 5  # tok/s, TTFT, logprob lines, attention sinks, heatmap
    assert "<polyline" in page
    assert 'class="tok special"' in page and "tok anomaly" in page  # control token, flagged token
    assert "<ins" in page or "<del" in page  # the word diff of column 2 against column 1
    assert "pg-ins" in page


def test_html_says_plainly_what_a_run_lacks() -> None:
    run = make_run(outputs=("Paris.",))
    for m in run.models:
        m.capabilities.logprobs = False
    run.capture_attention = False
    page = render_report(run, "html")
    assert "This run has no token probabilities" in page
    assert "This run has no attention (capture was off for this run)" in page
    assert "This run was not grounded" in page
    assert "Nothing to compare: only one column" in page
    assert "No token breakdown" in page  # token ids only in the sample record


# -- Markdown ---------------------------------------------------------------------------------------------


def _fenced_blocks(md: str) -> list[tuple[str, str]]:
    """(fence, body) of every fenced block, read the way CommonMark closes them."""
    blocks, lines, i = [], md.split("\n"), 0
    while i < len(lines):
        opening = re.match(r"^(`{3,})(.*)$", lines[i])
        if not opening:
            i += 1
            continue
        marks, body, i = opening.group(1), [], i + 1
        while i < len(lines) and not re.fullmatch(rf"`{{{len(marks)},}}\s*", lines[i]):
            body.append(lines[i])
            i += 1
        blocks.append((marks, "\n".join(body)))
        i += 1
    return blocks


def test_markdown_fences_cannot_be_broken_out_of() -> None:
    run = xss_run()
    md = render_report(run, "markdown")
    blocks = _fenced_blocks(md)
    bodies = [body for _, body in blocks]
    assert run.prompt in bodies and run.system_prompt in bodies
    assert FENCED_OUTPUT.rstrip("\n") in bodies  # whole, with its ``` and ```` lines inside
    fence_of = {body: marks for marks, body in blocks}
    assert len(fence_of[FENCED_OUTPUT.rstrip("\n")]) == 5
    assert fence("no backticks") == "```" and fence("a ````` b") == "``````"
    assert code_block("x").startswith("```text\nx\n```")


def test_markdown_escapes_typed_text_outside_code_blocks() -> None:
    md = render_report(xss_run(), "markdown")
    outside = re.sub(r"(?ms)^(`{3,})text\n.*?^\1$", "", md)
    assert "<script" not in outside and "<img" not in outside
    assert "model &lt;script&gt;" in outside  # the model name, inline
    assert inline("a|b *c* [d](e) `f`\nnext") == r"a\|b \*c\* \[d\](e) \`f\` next"


def test_markdown_has_metrics_tokens_diffs_and_grounding() -> None:
    md = render_report(rich_run(), "markdown")
    assert md.startswith("# playground run ")
    for heading in ("## Prompt", "## Summary", "## 1 · smollm2-135m", "## Prompt tokens",
                    "## Token probabilities", "## Differences", "## Grounding", "## Attention"):
        assert f"\n{heading}\n" in f"\n{md}", heading
    assert "| time to first token | 0.125 s |" in md
    assert "| decode speed | 27.5 tok/s |" in md
    assert "$0.0123" in md
    assert "special\\_literal" in md and "> **Error:** out of memory" in md
    assert "| 1 · smollm2-135m | 5 | 7 |" in md  # templated prompt tokens, user text tokens
    assert "cites \\[1\\] · ⚠ cites sources that do not exist: \\[7\\]" in md
    assert "Word diff of each column against **1 · smollm2-135m**" in md


def test_markdown_says_plainly_what_a_run_lacks() -> None:
    run = make_run(outputs=("Paris.",))
    md = render_report(run, "markdown")
    assert "This run was not grounded" in md
    assert "This run has no attention" in md
    assert "Nothing to compare: only one column." in md


# -- formats and the CLI ----------------------------------------------------------------------------------


def test_format_comes_from_the_extension() -> None:
    assert report_format("a/b.HTML") == "html" and report_format("x.md") == "markdown"
    for bad in ("x.txt", "x", "x.html.gz"):
        with pytest.raises(ReportError, match="name the file .html"):
            report_format(bad)
    run = make_run()
    assert report_filename(run, "markdown") == f"playground-report-{run.id}.md"


def _cli(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(REPO), "PLAYGROUND_DB": str(db), "GRADIO_ANALYTICS_ENABLED": "False",
           "PATH": "/usr/bin:/bin", "HOME": str(db.parent)}
    return subprocess.run([sys.executable, "-m", "playground", "sessions", "report", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_cli_writes_html_and_markdown_and_refuses_the_rest(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite3"
    run = xss_run()
    SessionStore(db).save(run)
    html_file, md_file = tmp_path / "r.html", tmp_path / "r.md"
    done = _cli(run.id, str(html_file), db=db)
    assert done.returncode == 0, done.stderr
    assert f"wrote the html report of {run.id}" in done.stderr
    assert ESCAPED in html_file.read_text(encoding="utf-8")
    assert _cli(run.id, str(md_file), db=db).returncode == 0
    assert md_file.read_text(encoding="utf-8").startswith(f"# playground run {inline(run.id)}")

    wrong = _cli(run.id, str(tmp_path / "r.txt"), db=db)
    assert wrong.returncode == 2 and not (tmp_path / "r.txt").exists()
    assert "cannot tell the report format" in wrong.stderr and ".html" in wrong.stderr
    unknown = _cli("AAAAAAAAAAAAAAAAAAAAAAA", str(tmp_path / "u.md"), db=db)
    assert unknown.returncode == 2 and not (tmp_path / "u.md").exists()
    assert "no saved run has the id" in unknown.stderr


def test_service_writes_reports_like_exports_and_removes_them(tmp_path: Path) -> None:
    from playground.config import Settings
    from playground.service import RunService

    store = SessionStore(tmp_path / "runs.sqlite3")
    service = RunService(Settings(data_dir=tmp_path), engine=object(), store=store)  # no model needed
    run = xss_run()
    store.save(run)
    page, md = service.report_file(run.id, "html"), service.report_file(run.id, "markdown")
    assert page.name == f"playground-report-{run.id}.html" and md.name == f"playground-report-{run.id}.md"
    assert page.parent != md.parent  # a folder per request, as exports
    assert ESCAPED in page.read_text(encoding="utf-8")
    # made on the page: the files say so, not the command line's name
    assert "by the page (its Report button)" in md.read_text(encoding="utf-8")
    assert "by the page (its Report button)" in page.read_text(encoding="utf-8")
    assert "sessions report" not in md.read_text(encoding="utf-8")
    service.close()
    assert not page.exists() and not md.exists()


def test_a_conversation_and_column_system_prompts_are_in_both_reports() -> None:
    """Earlier turns with each column's own answer, then this run's prompt; a column's own
    system prompt by name; everything typed or generated escaped (HTML) or fenced (Markdown)."""
    earlier = xss_run()
    run = make_run(prompt="And then?", outputs=("Then bees.", "Then honey."))
    run.history = [earlier.next_turn()]
    run.models[1].system_prompt = f"Pirate {XSS}"
    page = render_report(run, "html")
    assert "<h3>Turn 1</h3>" in page and "<h3>Turn 2 (this run)</h3>" in page
    assert f"Explain {ESCAPED}" in page and f"Answer {ESCAPED}" in page and f"Pirate {ESCAPED}" in page
    assert "<script" not in page and parsed(page).tags <= ALLOWED_TAGS
    text = render_report(run, "markdown")
    assert "**Turn 1**" in text and "**Turn 2 (this run)**" in text
    assert code_block(f"Explain {XSS}") in text and code_block(f"Pirate {XSS}") in text
    assert code_block(FENCED_OUTPUT) in text  # the earlier answer with ``` runs stays inside its fence


def test_markdown_strips_control_characters_from_saved_text(tmp_path: Path) -> None:
    """An escape in a saved answer (clear screen, retitle, bell) never reaches the .md file: whoever
    prints the report in a terminal sees the text, not the effect. Tabs and newlines stay."""
    escapes = "\x1b[2J\x1b]0;owned\x07\x9b31m\x00\r\x7f"
    run = make_run(prompt=f"Say{escapes} hi", outputs=(f"Clear{escapes} screen\tnow\nplease", "fine"))
    run.models[1].error = f"failed{escapes}"
    db = tmp_path / "runs.sqlite3"
    SessionStore(db).save(run)
    md_file = tmp_path / "r.md"
    assert _cli(run.id, str(md_file), db=db).returncode == 0
    text = md_file.read_text(encoding="utf-8")
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", text)
    assert "Clear[2J]0;owned31m screen\tnow\nplease" in text
    assert render_report(run, "markdown") == text


# -- issue 22 item 8: who made it, chips that wrap, titles with room, counted nouns --------------------


def test_each_report_says_who_made_it_as_its_caller_says() -> None:
    run = make_run(outputs=("Paris.",))
    cli_md, page_md = render_report(run, "markdown"), render_report(run, "markdown", origin="page")
    assert "by the command line (`python -m playground sessions report`)" in cli_md.splitlines()[2]
    assert "by the page (its Report button)." in page_md.splitlines()[2] and "sessions report" not in page_md
    assert "by the page (its Report button)" in render_report(run, "html", origin="page")
    assert "by the command line (python -m playground sessions report)" in render_report(run, "html")
    with pytest.raises(ValueError, match="unknown report origin 'api'"):
        render_report(run, "markdown", origin="api")


def test_report_counts_columns_in_words() -> None:
    one, two = make_run(outputs=("Paris.",)), make_run(outputs=("Paris.", "Lyon."))
    assert "· 1 column ·" in render_report(one, "markdown")
    assert "· 2 columns ·" in render_report(two, "markdown")
    assert "1 column:" in render_report(one, "html") and "2 columns:" in render_report(two, "html")
    assert "(s)" not in render_report(two, "markdown")


def _rule(page: str, selector: str) -> str:
    found = re.search(r"(?m)^" + re.escape(selector) + r" \{([^}]*)\}", page)
    assert found, f"no CSS rule for {selector}"
    return found.group(1)


def test_token_chips_wrap_inside_the_page() -> None:
    page = render_report(rich_run(), "html")
    chips, tok = _rule(page, ".chips"), _rule(page, ".tok")
    assert "flex-wrap: wrap" in chips and "max-width: 100%" in chips
    assert "white-space: pre-wrap" in tok and "overflow-wrap: anywhere" in tok
    assert "white-space: pre;" not in tok  # a chip that never breaks ran off the page


def test_a_long_chart_title_wraps_and_the_heatmap_starts_under_it() -> None:
    from playground.report import svg

    title = "smollm2-135m (Q4) · column 1: layer 29, mean over heads, last 32 positions (query down, key " \
            "across; darker = more)"
    drawn = svg.heatmap(title, [[1.0, 0.0], [0.5, 0.5]], ["a", "b"])
    lines = re.findall(r"<tspan[^>]*>([^<]*)</tspan>", drawn)
    assert len(lines) >= 2 and " ".join(lines) == html_escape(title)
    width = int(re.search(r'width="(\d+)"', drawn).group(1))
    assert all(len(line) * svg.TITLE_CHAR_W <= width for line in lines)  # each line fits the chart
    first_cell_y = float(re.search(r'<rect x="[\d.]+" y="([\d.]+)"', drawn).group(1))
    assert first_cell_y >= svg.TITLE_LINE * len(lines)  # the grid is below the title, not over it
    assert 'fill="#0072B2"' in drawn  # Okabe-Ito blue: one hue, readable with any colour vision


def test_a_long_legend_runs_onto_more_rows_inside_the_chart() -> None:
    from playground.report import svg

    series = [(f"column {i} · a model with a long name", [0.1 * i, 0.2]) for i in range(6)]
    drawn = svg.line_chart("Log-probability per output token", series, "logprob")
    width, height = (int(v) for v in re.search(r'width="(\d+)" height="(\d+)"', drawn).groups())
    keys = [(int(x), int(y)) for x, y in re.findall(r'<rect x="(\d+)" y="(\d+)" width="10"', drawn)]
    labels = re.findall(r'<text x="(\d+)" y="\d+" [^>]*>([^<]*)</text>', drawn)[-len(series):]
    assert len(keys) == len(series) and len({y for _, y in keys}) > 1  # more than one row
    assert all(int(x) + len(text) * 7 <= width for x, text in labels)  # every name inside the chart
    assert max(y for _, y in keys) + 10 <= height
