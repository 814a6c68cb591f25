"""Sharing in the browser: permalinks, replay without models, Run again, import, delete, XSS."""

from __future__ import annotations

import re

from .helpers import notice_has, set_max_tokens, settle, share_link

XSS_PROMPT = "Say hi. <script>alert(1)</script> <img src=x onerror=alert(1)>"
DONE = "() => (document.querySelector('#notice')?.innerText || '').includes('done')"


def _run(page, prompt: str, tokens: int = 12) -> str:  # noqa: ANN001
    """Run both default columns; return the full share link."""
    page.fill("#prompt textarea", prompt)
    set_max_tokens(page, tokens)
    page.click("#run-btn")
    page.wait_for_function(DONE, timeout=600_000)
    settle(page)
    return share_link(page)


def _column_view(page, col: int) -> tuple[str, str]:  # noqa: ANN001
    head = page.locator(f"#head-{col}").inner_text()
    return page.locator(f"#out-{col}").inner_text(), head.replace("already loaded", "").strip()


def test_link_replays_in_a_fresh_browser_without_loading_models(page, browser, replay_server) -> None:  # noqa: ANN001
    link = _run(page, "What is the capital of France?")
    assert "?session=" in link
    original = [_column_view(page, c) for c in (0, 1)]
    wall = page.locator("#run-wall").inner_text()  # the run's wall time, apart from the columns' own
    assert re.fullmatch(r"Run wall time \d+\.\d s \(loading included\); each column's figures count its "
                        r"own time", wall.strip()), wall
    assert "own time" in page.locator("#run-wall [data-metric=run-wall]").get_attribute("title")
    replay_url, replay_pool = replay_server
    session = link.split("?", 1)[1]
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    fresh = context.new_page()
    fresh.goto(f"{replay_url}/?{session}")
    notice_has(fresh, "Replay of saved run")
    replayed = [_column_view(fresh, c) for c in (0, 1)]
    assert [r[0] for r in replayed] == [o[0] for o in original]
    for (_, head_replayed), (_, head_original) in zip(replayed, original, strict=True):
        assert head_replayed.split("load")[0] == head_original.split("load")[0]  # metrics line
    assert fresh.locator("#prompt textarea").input_value() == "What is the capital of France?"
    assert fresh.locator("#run-wall").inner_text() == wall  # drawn from the saved record
    assert replay_pool.loaded() == [], "a replay must not load any model"
    context.close()


def test_xss_strings_stay_text_in_every_panel(page) -> None:  # noqa: ANN001
    link = _run(page, XSS_PROMPT)
    page.goto(link)
    notice_has(page, "Replay of saved run")
    page.locator("#history-box").click()
    page.wait_for_selector("#history a")
    assert page.locator("#prompt textarea").input_value() == XSS_PROMPT
    assert "<img src=x" in page.locator("#history").inner_text()  # shown, as text
    for area in ("#columns", "#history", "#notice", "#rerun-report"):
        assert page.locator(f"{area} img").count() == 0, area
        assert page.locator(f"{area} script").count() == 0, area
    assert page.dialogs == []


def test_run_again_on_a_greedy_run_reports_identical(page) -> None:  # noqa: ANN001
    link = _run(page, "Name a primary colour.", tokens=10)
    page.goto(link)
    notice_has(page, "Replay of saved run")
    page.click("#again-btn")
    page.wait_for_selector("#rerun-report li", timeout=600_000)
    items = page.locator("#rerun-report li")
    assert items.count() == 2
    for i in range(2):
        assert items.nth(i).get_attribute("data-identical") == "true", items.nth(i).inner_text()
        assert "identical" in items.nth(i).inner_text()


def test_bad_session_ids_get_clear_messages(page, app_url) -> None:  # noqa: ANN001
    page.goto(f"{app_url}/?session=../../etc/passwd")
    notice_has(page, "is not a session id")
    page.goto(f"{app_url}/?session=AAAAAAAAAAAAAAAAAAAAAA")
    notice_has(page, "no saved run has the id")


def test_import_shows_a_replay_and_refuses_bad_files(page, store, tmp_path) -> None:  # noqa: ANN001
    from playground.sessions.bundle import export_bundle

    run = store.recent(limit=1)
    assert run, "needs an earlier test's run"
    saved = store.get(run[0].id)
    good = tmp_path / "good.json"
    good.write_text(export_bundle(saved), encoding="utf-8")
    with page.expect_file_chooser() as chooser:
        page.click("#import-btn")
    chooser.value.set_files(str(good))
    notice_has(page, "Imported run")
    assert page.locator("#out-0").inner_text().split() == saved.models[0].text.split()
    # The file's id is taken (it came from this store): the import gets a new id, the saved run stays.
    stored_as = page.locator("#share-link textarea, #share-link input").first.input_value().split("=")[1]
    assert stored_as != saved.id
    assert (f"a saved run already has the id {saved.id}; this import was stored as {stored_as}"
            in page.locator("#notice").inner_text())
    assert store.get(saved.id).to_dict() == saved.to_dict()
    bad = tmp_path / "truncated.json"
    bad.write_text(export_bundle(saved)[:200], encoding="utf-8")
    with page.expect_file_chooser() as chooser:
        page.click("#import-btn")
    chooser.value.set_files(str(bad))
    notice_has(page, "import refused")
    assert "not valid JSON" in page.locator("#notice").inner_text()


def test_delete_removes_the_run_and_its_link(page, store) -> None:  # noqa: ANN001
    link = _run(page, "Say one word.", tokens=4)
    run_id = link.split("session=")[1]
    page.goto(link)
    notice_has(page, "Replay of saved run")
    page.click("#delete-btn")
    notice_has(page, "deleted run")
    page.goto(link)
    notice_has(page, "no saved run has the id")
    assert all(r.id != run_id for r in store.recent(limit=200))
    assert page.dialogs == ["Delete this saved run? Its link will stop working."]




def test_declining_the_delete_confirmation_keeps_the_run_without_an_error(browser, app_url, store) -> None:  # noqa: ANN001
    from .helpers import VIEWPORT

    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(app_url)
        page.wait_for_selector("#prompt textarea")
        link = _run(page, "Say one word.", tokens=4)
        run_id = link.split("session=")[1]
        page.goto(link)
        notice_has(page, "Replay of saved run")
        page.click("#delete-btn")
        page.wait_for_timeout(2000)  # the handler's answer (before: the run was deleted all the same)
        assert dialogs == ["Delete this saved run? Its link will stop working."]
        assert store.get(run_id).id == run_id
        assert "Replay of saved run" in page.locator("#notice").inner_text()
        assert page.locator(".toast-body.error").count() == 0
    finally:
        context.close()
