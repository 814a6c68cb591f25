"""Renderers escape everything typed by a user or a model."""

from playground.record import GenerationParams, Metrics, ModelIdentity, ModelRun, Run
from playground.ui.html import column_header, conversation_markdown, markdown_safe, notice, run_wall

XSS = "<script>alert(1)</script> and <img src=x onerror=alert(1)>"


def test_markdown_safe_escapes_tags_outside_code() -> None:
    out = markdown_safe(f"Hello {XSS}")
    assert "<script>" not in out and "<img" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out


def test_markdown_safe_leaves_code_alone() -> None:
    text = "Use `a < b` here.\n\n```html\n<div>x</div>\n```\nthen <b>"
    out = markdown_safe(text)
    assert "`a < b`" in out
    assert "```html\n<div>x</div>\n```" in out
    assert out.endswith("then &lt;b&gt;")


def test_markdown_safe_unclosed_fence_stays_code() -> None:
    assert markdown_safe("```\n<b>streaming") == "```\n<b>streaming"


def test_column_header_escapes_names_and_errors() -> None:
    run = ModelRun(
        column=0,
        identity=ModelIdentity(catalog_id=XSS, name=XSS, source="hub", location=XSS),
        params=GenerationParams(),
        finish_reason="error",
        error=f"could not load {XSS}",
        metrics=Metrics(),
    )
    out = column_header(run)
    assert "<script>" not in out and "<img" not in out
    assert "pg-error" in out and "could not load &lt;script&gt;" in out


def test_column_header_names_the_decode_path_once_with_the_reason_in_its_tooltip() -> None:
    run = ModelRun(
        column=0,
        identity=ModelIdentity(catalog_id="m", name="m", source="dir", location="", device="cuda:0",
                               decode_path=f"eager: capture failed: {XSS}"),
        params=GenerationParams(),
        finish_reason="length",
        metrics=Metrics(output_tokens=3, graph_capture_s=0.25),
    )
    out = column_header(run)
    assert "<script>" not in out and "<img" not in out
    assert '<span class="pg-badge pg-path" title="eager: capture failed: &lt;script&gt;' in out
    assert out.count(">eager</span>") == 1
    assert "graph capture 0.25 s" in out


def test_a_stopped_column_says_so_without_error_styling() -> None:
    run = ModelRun(column=0, identity=ModelIdentity(catalog_id="m", name="m", source="dir", location=""),
                   params=GenerationParams(), finish_reason="cancelled",
                   error="stopped by the user; partial output kept", metrics=Metrics())
    out = column_header(run)
    assert '<div class="pg-stopped">stopped by the user; partial output kept</div>' in out
    assert "pg-error" not in out and "role=\"alert\"" not in out


def test_notice_escapes() -> None:
    assert "<img" not in notice(XSS, "error")


def test_markdown_images_become_plain_links() -> None:
    out = markdown_safe("See ![pixel](http://127.0.0.1:9/p.png) now")
    assert out == "See \\![pixel](http://127.0.0.1:9/p.png) now"
    ref = markdown_safe("![alt][r]\n\n[r]: http://127.0.0.1:9/r.png")
    assert ref.startswith("\\![alt][r]")
    assert markdown_safe("!![x](u)") == "!\\![x](u)"


def test_markdown_images_already_escaped_or_behind_backslashes() -> None:
    assert markdown_safe("\\![x](u)") == "\\![x](u)"  # already text: left as it is
    assert markdown_safe("\\\\![x](u)") == "\\\\\\![x](u)"  # an escaped backslash, then an image: escaped


def test_markdown_images_in_code_stay_code() -> None:
    assert markdown_safe("`![x](u)`") == "`![x](u)`"
    assert markdown_safe("```\n![x](u)\n```") == "```\n![x](u)\n```"


def test_timestamps_never_crash() -> None:
    from playground.ui.html import when

    assert when(0) != "unknown time"
    for odd in (float("nan"), 1e300, -1e300, "yesterday", None):
        assert when(odd) == "unknown time"


def test_history_says_whose_runs_and_what_was_skipped() -> None:
    from playground.sessions.store import RunSummary
    from playground.ui.html import history

    row = RunSummary(id="abc", created_at=float("inf"), prompt=XSS, models=["m<1>"])
    out = history([row], skipped=2)
    assert "Your saved runs" in out and "2 saved runs could not be read" in out
    assert "unknown time" in out and "<script>" not in out and "m&lt;1&gt;" in out
    assert "Everyone's saved runs" in history([], shared=True)


def test_memory_shows_weights_and_kv_and_a_measured_peak() -> None:
    from playground.ui.html import memory_text

    def run(**metrics: object) -> ModelRun:
        identity = ModelIdentity("m", "m", "gguf", "x")
        return ModelRun(0, identity, GenerationParams(), metrics=Metrics(**metrics))

    mb = 2**20
    assert memory_text(run(weights_bytes=540 * mb, kv_cache_bytes=int(1.2 * mb))) == (
        "mem 540.0 MB weights + 1.2 MB KV")
    assert memory_text(run(weights_bytes=540 * mb, kv_cache_bytes=mb, peak_memory_bytes=600 * mb,
                           memory_kind="cuda allocator peak")) == (
        "mem 540.0 MB weights + 1.0 MB KV (cuda allocator peak 600.0 MB)")
    assert memory_text(run(peak_memory_bytes=5 * mb, memory_kind="process RSS growth")) == (
        "mem 5.0 MB (process RSS growth)")  # a record saved before weights + KV were kept
    assert memory_text(run()) == ""


def test_loaded_models_line_shows_memory_use_and_budget() -> None:
    from playground.backends.pool import LoadedInfo
    from playground.ui.html import loaded_models

    gb = 2**30
    info = LoadedInfo("smollm2-135m", "cpu", "float32", 2.5, True, 540 * 2**20, 1)
    line = loaded_models([info], used_bytes=int(0.6 * gb), budget_bytes=int(14.2 * gb))
    assert "Loaded: smollm2-135m (cpu float32, 540.0 MB, in use by 1 column) · 0.6 of 14.2 GB budget" in line
    assert "idle" in loaded_models([LoadedInfo("<b>", "cpu", "float32", 1.0, False, 0, 0)])
    assert "<b>" not in loaded_models([LoadedInfo("<b>", "cpu", "float32", 1.0, False, 0, 0)])


def test_a_served_column_says_what_it_lacks_and_what_the_server_reported() -> None:
    from playground.record import ColumnCapabilities, TokenStep
    from playground.ui.prob_view import column_html
    from playground.ui.token_view import anomalies_html

    caps = ColumnCapabilities(token_ids="approximate",
                              token_ids_note="this server has no <tokenize> endpoint", logprobs=False,
                              logprobs_note="this server did not return logprobs",
                              attention=False, memory=False, refused=["top k"])
    run = ModelRun(0, ModelIdentity("gpt-5-mini", "GPT-5 mini", "openai", "https://x/v1", device="remote",
                                    engine="openai-compatible server"),
                   GenerationParams(), steps=[TokenStep(-1, "Paris", 0.0)], text="Paris", finish_reason="eos",
                   metrics=Metrics(prompt_tokens=13, output_tokens=1, usage_prompt_tokens=13,
                                   usage_output_tokens=1, cost_usd=0.0000263, server_decode_tok_s=41.5),
                   capabilities=caps)
    head = column_header(run)
    assert "tokens: approximate (this server has no &lt;tokenize&gt; endpoint)" in head
    assert "token probabilities: this server did not return logprobs" in head
    assert "the server refused top k; ran without" in head
    assert "usage 13 + 1" in head and "$0.000026" in head and "server 41.5 tok/s" in head
    assert "openai-compatible server" in head and "mem " not in head
    assert "no token probabilities: this server did not return logprobs" in column_html(run)
    assert 'data-tokens="approximate"' in anomalies_html(run)


def test_a_conversation_shows_each_turn_in_the_column_escaped() -> None:
    from playground.record import Run, Turn

    def column(text: str) -> ModelRun:
        identity = ModelIdentity("m", "m", "dir", "")
        return ModelRun(column=0, identity=identity, params=GenerationParams(), text=text)

    run = Run(prompt=f"And {XSS}?", models=[column("Then bees.")],
              history=[Turn(f"Hi\nthere {XSS}", [column(f"Hello {XSS}")])])
    out = conversation_markdown(run, 0)
    assert "<script>" not in out and "<img" not in out
    assert out.startswith("> **You:** Hi\n> there &lt;script&gt;")
    assert "Hello &lt;script&gt;" in out and out.endswith("Then bees.")
    assert out.count("**You:**") == 2
    assert conversation_markdown(Run(prompt="x", models=[column("plain")]), 0) == "plain"


def _figures(header: str) -> dict[str, tuple[str, str]]:
    """Each figure of a column header: its name (data-metric) -> (its text, its tooltip)."""
    from html.parser import HTMLParser

    found: dict[str, tuple[str, str]] = {}

    class Figures(HTMLParser):
        current: tuple[str, str] | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            named = dict(attrs)
            if tag == "span" and named.get("class") == "pg-metric":
                self.current = (named.get("data-metric") or "", named.get("title") or "")

        def handle_data(self, data: str) -> None:
            if self.current is not None:
                found[self.current[0]] = (data, self.current[1])
                self.current = None

    Figures().feed(header)
    return found


def _local_run(**metrics: object) -> ModelRun:
    identity = ModelIdentity("smollm2-135m", "SmolLM2", "hub", "x", device="cpu", dtype="float32")
    return ModelRun(0, identity, GenerationParams(), finish_reason="eos", metrics=Metrics(**metrics))


def test_every_figure_of_a_column_says_what_it_counts() -> None:
    mb = 2**20
    run = _local_run(prompt_tokens=37, output_tokens=8, ttft_s=0.5, decode_tok_s=20.0, total_s=0.85,
                     load_s=2.0, loaded_from_cache=True, graph_capture_s=0.3, weights_bytes=500 * mb,
                     kv_cache_bytes=mb, clock="own", wall_ttft_s=1.5, wall_total_s=3.25,
                     output_tokens_from="tokenizer")
    figures = _figures(column_header(run))
    assert set(figures) == {"tokens", "ttft", "tok/s", "total", "load", "graph", "mem", "device"}
    assert all(tip for _text, tip in figures.values()), figures
    assert figures["tokens"][0] == "37 → 8 tokens" and "own tokenizer" in figures["tokens"][1]
    assert figures["ttft"][0] == "TTFT 0.50 s"
    assert "own clock" in figures["ttft"][1] and "Wall clock: 1.50 s" in figures["ttft"][1]
    assert "Wall clock: 3.25 s" in figures["total"][1] and "neighbours" in figures["tok/s"][1]
    assert "not counted" in figures["load"][1] and "kept out of TTFT" in figures["graph"][1]


def test_a_served_columns_figures_say_whose_they_are() -> None:
    from playground.record import ColumnCapabilities

    run = ModelRun(0, ModelIdentity("gpt", "GPT", "openai", "https://x/v1", device="remote", engine=XSS),
                   GenerationParams(), finish_reason="eos", capabilities=ColumnCapabilities(memory=False),
                   metrics=Metrics(prompt_tokens=13, output_tokens=4, ttft_s=0.2, total_s=0.4, clock="own",
                                   usage_prompt_tokens=13, usage_output_tokens=4, cost_usd=0.002,
                                   server_decode_tok_s=41.5, weights_bytes=2**30,
                                   output_tokens_from="server usage"))
    header = column_header(run)
    assert "<script>" not in header and "<img" not in header  # the engine's name is escaped too
    figures = _figures(header)
    assert {"server", "usage", "cost", "mem"} <= set(figures)
    assert "usage report" in figures["tokens"][1] and "its memory is the server's" in figures["mem"][1]
    assert "reported" in figures["server"][1] and "prices" in figures["cost"][1]


def test_an_older_record_says_its_times_were_wall_time() -> None:
    figures = _figures(column_header(_local_run(prompt_tokens=5, output_tokens=2, ttft_s=1.0, total_s=2.0)))
    assert "wall time from the column's start" in figures["ttft"][1]
    assert "Wall clock" not in figures["total"][1]
    assert "saved before tokens were counted apart" in figures["tokens"][1]


def test_the_token_counter_moves_while_the_column_streams() -> None:
    from playground.record import TokenStep

    run = _local_run(prompt_tokens=37)
    run.finish_reason = ""  # streaming
    assert _figures(column_header(run, "generating"))["tokens"][0] == "37 → 0 tokens so far"
    run.steps += [TokenStep(i, "a", -0.1) for i in range(3)]
    assert _figures(column_header(run, "generating"))["tokens"][0] == "37 → 3 tokens so far"
    run.steps += [TokenStep(i, "b", -0.1) for i in range(2)]
    live = _figures(column_header(run, "generating"))["tokens"]
    assert live[0] == "37 → 5 tokens so far" and "as they stream" in live[1]
    run.finish_reason, run.metrics.output_tokens = "eos", 4  # the final count replaces the live one
    assert _figures(column_header(run))["tokens"][0] == "37 → 4 tokens"


def _wall_run(wall_s: float, finish: str = "eos", history: bool = False) -> Run:
    from playground.record import Turn

    model = _local_run(prompt_tokens=5, output_tokens=2, ttft_s=0.2, total_s=0.4, clock="own")
    model.finish_reason = finish
    run = Run(prompt=XSS, system_prompt=XSS, models=[model], wall_s=wall_s)
    if history:
        run.history = [Turn(prompt=XSS, models=[model])]
    return run


def test_the_run_wall_time_is_shown_apart_with_what_it_counts() -> None:
    line = run_wall(_wall_run(12.34))
    figures = _figures(line)
    assert figures["run-wall"][0] == "Run wall time 12.3 s (loading included)"
    assert "wall clock from Run to the last column's end" in figures["run-wall"][1]
    assert "own time" in figures["run-wall"][1] and "each column's figures count its own time" in line
    assert 'data-wall="12.340"' in line
    assert "<script" not in line and "<img" not in line  # nothing typed by a user or a model is in it


def test_a_conversation_turn_says_its_wall_time_is_the_turns() -> None:
    line = _figures(run_wall(_wall_run(3.0, history=True)))["run-wall"][0]
    assert line == "This turn's wall time 3.0 s (loading included)"


def test_no_run_wall_time_for_older_records_tokenize_only_or_no_run() -> None:
    assert run_wall(None) == ""
    assert run_wall(_wall_run(0.0)) == ""  # saved before the run's wall time was kept
    assert run_wall(_wall_run(1.5, finish="tokenized")) == ""  # nothing was generated
    assert run_wall(Run(prompt="x", wall_s=2.0)) == ""  # no columns
