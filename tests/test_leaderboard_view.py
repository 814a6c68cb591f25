"""The Leaderboard panel's HTML: intervals only where settled, style effects, a table per category, the
judge's line; everything typed is escaped."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from sample_runs import make_run

from playground.config import Settings
from playground.inspect.leaderboard import Vote, leaderboard
from playground.service import RunService
from playground.sessions.store import SessionStore
from playground.ui.leaderboard_view import RAW, STYLED, category_tables, judge_line, leaderboard_html

XSS = "<img src=x onerror=alert(1)>"


def test_one_vote_shows_needs_more_votes_and_no_interval() -> None:
    page = leaderboard_html(leaderboard([Vote("r", [XSS, "b"], "win", 0)]), category=XSS)
    assert "needs more votes (1 of 10 comparisons)" in page and "<img" not in page
    assert 'data-settled="false"' in page and " – " not in page.split("</thead>")[1].split("</table>")[0]


def test_settled_models_show_their_interval() -> None:
    page = leaderboard_html(leaderboard([Vote("r", ["a", "b"], "win", 0)] * 12))
    assert 'data-settled="true"' in page and "needs more votes" not in page and " – " in page


def test_per_category_tables_and_style_effects(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    service = RunService(settings, engine=SimpleNamespace(), store=SessionStore(tmp_path / "runs.sqlite3"))  # type: ignore[arg-type]
    for i, category in enumerate(["math", "math", XSS]):
        run = make_run(outputs=("**long** answer " * 20, "short"))
        service.store.save(run)
        service.mark_blind(run.id, [0, 1])
        service.vote(run.id, "win", 0, f"v{i}", category)
    from playground.ui.leaderboard_view import LeaderboardPanel

    panel = LeaderboardPanel(*[object()] * 7)
    raw = panel.html(service, "", RAW)
    assert raw.count('class="pg-lb-category"') == 2 and 'data-category="math"' in raw and "<img" not in raw
    styled = panel.html(service, "math", STYLED)
    assert "style-controlled" in styled and "lb-style-effects" in styled and "pg-lb-category" not in styled
    assert category_tables([]) == ""


def test_the_judge_line_is_escaped_and_absent_without_a_figure() -> None:
    figure = SimpleNamespace(rate=0.75, compared=4, decisive=2, decisive_agreed=1)
    assert "75% of 4 compared" in judge_line(SimpleNamespace(judge_agreement=lambda judge, category: figure))
    none = SimpleNamespace(rate=None, compared=0, decisive=0, decisive_agreed=0)
    assert judge_line(SimpleNamespace(judge_agreement=lambda judge, category: none)) == ""
