"""Reports in the browser: the HTML file shows an XSS payload as text and runs nothing; the bar downloads."""

from __future__ import annotations

from pathlib import Path

import pytest
from sample_runs import make_run

from playground.report import render_report

from .helpers import new_page, notice_has

# Each part would set window.__pwned (or raise a dialog) if it ever became markup.
PAYLOAD = ("<script>window.__pwned = 'script'; alert(1)</script>"
           "<img src=x onerror=\"window.__pwned = 'img'; alert(2)\">")


def _xss_run():  # noqa: ANN202 - a Run
    run = make_run(prompt=f"Say hi. {PAYLOAD}", system_prompt=f"System {PAYLOAD}",
                   outputs=(f"Hi {PAYLOAD}", "Hello ``` there"))
    run.models[0].identity.name = f"model {PAYLOAD}"
    return run


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["with-csp", "escaping-alone"])
def test_html_report_shows_the_payload_as_text_and_runs_nothing(browser, tmp_path: Path,  # noqa: ANN001
                                                                  bypass_csp: bool) -> None:
    report = tmp_path / "report.html"
    report.write_text(render_report(_xss_run(), "html"), encoding="utf-8")
    # bypass_csp: the page's Content-Security-Policy switched off, so escaping alone must hold.
    context = browser.new_context(bypass_csp=bypass_csp, viewport={"width": 1440, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    requests: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)
        texts = page.locator("#prompt pre").all_inner_texts()
        assert texts == [f"System {PAYLOAD}", f"Say hi. {PAYLOAD}"]
        assert f"Hi {PAYLOAD}" in page.locator("#column-0 pre").first.inner_text()
        assert f"model {PAYLOAD}" in page.locator("#summary").inner_text()
        assert page.locator("script").count() == 0
        assert page.locator("img").count() == 0
        assert page.evaluate("() => window.__pwned === undefined")
        assert dialogs == []
        assert requests == [report.as_uri()], "the report must fetch nothing"
        assert page.locator("svg.chart").count() >= 3  # speed and TTFT bars, logprob lines
    finally:
        context.close()


def test_session_bar_downloads_reports_of_the_shown_run(browser, app_url, store) -> None:  # noqa: ANN001
    page = new_page(browser, app_url)
    try:
        for button in ("#report-html-btn", "#report-md-btn"):
            assert page.locator(button).is_disabled(), "no saved run yet: nothing to report"
        run = _xss_run()
        store.save(run, owner="someone")
        page.goto(f"{app_url}/?session={run.id}")
        notice_has(page, "Replay of saved run")
        with page.expect_download(timeout=30_000) as download:
            page.click("#report-html-btn")
        assert download.value.suggested_filename == f"playground-report-{run.id}.html"
        html_text = Path(download.value.path()).read_text(encoding="utf-8")
        assert "&lt;script&gt;window.__pwned" in html_text and "<script" not in html_text
        with page.expect_download(timeout=30_000) as download:
            page.click("#report-md-btn")
        assert download.value.suggested_filename == f"playground-report-{run.id}.md"
        markdown = Path(download.value.path()).read_text(encoding="utf-8")
        assert markdown.startswith("# playground run") and "Hello ``` there" in markdown
        assert page.dialogs == []
    finally:
        page.context.close()
