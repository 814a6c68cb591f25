"""Renderers escape everything typed by a user or a model."""

from playground.record import GenerationParams, Metrics, ModelIdentity, ModelRun
from playground.ui.html import column_header, markdown_safe, notice

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


def test_notice_escapes() -> None:
    assert "<img" not in notice(XSS, "error")
