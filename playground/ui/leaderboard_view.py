"""The Leaderboard panel: models ranked from blind votes, by category, and the votes as CSV.

The ranking is the Bradley-Terry fit of playground/inspect/leaderboard.py over every vote
stored on this server (votes say nothing about who cast them). The CSV download holds the
requester's own votes in full; other voters appear under a pseudonym, without run ids
unless history is shared team-wide (see RunService.votes_csv_file).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.inspect.leaderboard import BOOTSTRAP_ROUNDS, PRIOR_GAMES, Standing
from playground.service import RunService
from playground.ui import html as H
from playground.ui.page import Shell, owner_of
from playground.ui.session_bar import DOWNLOAD_JS

ALL = "all categories"


def leaderboard_html(standings: Sequence[Standing], category: str = "") -> str:
    """The ranking as an escaped table (model names and the category are user text)."""
    scope = f" in category <b>{html.escape(category)}</b>" if category else ""
    if not standings:
        return (f'<div class="pg-muted">No votes yet{scope}. Tick “Blind” near Run, run two or more '
                "columns and vote: the ranking appears here.</div>")
    rows = "".join(
        f'<tr data-model="{html.escape(s.model)}"><td>{s.rank}</td>'
        f'<td class="pg-model">{html.escape(s.model)}</td><td>{s.score:.0f}</td>'
        f"<td>{s.low:.0f} – {s.high:.0f}</td><td>{s.votes}</td>"
        f"<td>{_n(s.wins)} / {_n(s.losses)}</td><td>{s.ties}</td><td>{s.both_bad}</td></tr>"
        for s in standings)
    note = (f"Bradley–Terry scores (Elo-like: 400 points = 10:1 odds); 95% intervals from {BOOTSTRAP_ROUNDS} "
            "bootstrap resamples of the votes: overlapping intervals mean the order is not settled yet. "
            "A tie counts half a win each way; “both bad” counts as a tie; every model carries a weak prior "
            f"of {PRIOR_GAMES:g} tied game, so one lucky vote does not top the table.")
    return (f'<div class="pg-muted">Ranking from blind votes{scope}.</div>'
            '<table class="pg-leaderboard"><thead><tr><th>#</th><th>Model</th><th>Score</th><th>95% CI</th>'
            "<th>Votes</th><th>Wins / losses</th><th>Ties</th><th>Both bad</th></tr></thead>"
            f'<tbody>{rows}</tbody></table><div class="pg-muted">{html.escape(note)}</div>')


def _n(x: float) -> str:
    return f"{x:g}"


@dataclass
class LeaderboardPanel:
    box: Any
    category: Any
    refresh_btn: Any
    table: Any
    csv_btn: Any
    csv_file: Any

    def choices(self, service: RunService) -> list[str]:
        return [ALL, *service.vote_categories()]

    def redraw(self, service: RunService, category: str | None = None) -> dict[Any, Any]:
        picked = "" if not category or category == ALL else category
        choices = self.choices(service)
        if picked and picked not in choices:
            picked = ""
        return {self.table: leaderboard_html(service.leaderboard(picked), picked),
                self.category: gr.update(choices=choices, value=picked or ALL)}

    def wire(self, shell: Shell) -> None:
        service = shell.service

        def show(category: str | None) -> dict[Any, Any]:
            return self.redraw(service, category)

        def export(category: str | None, browser_id: object, request: gr.Request) -> dict[Any, Any]:
            picked = "" if not category or category == ALL else category
            path = service.votes_csv_file(owner_of(request, browser_id), picked)
            return {self.csv_file: str(path)}

        for trigger in (self.refresh_btn.click, self.category.input, self.box.expand):
            trigger(show, inputs=[self.category], outputs=[self.table, self.category])
        written = self.csv_btn.click(export, inputs=[self.category, shell.owner], outputs=[self.csv_file])
        written.success(None, inputs=[self.csv_file], js=DOWNLOAD_JS)

    def after_vote(self, service: RunService) -> list[tuple[Any, Any]]:
        """What a vote redraws: the table (all categories) and the category choices."""
        return [(self.table, lambda: leaderboard_html(service.leaderboard())),
                (self.category, lambda: gr.update(choices=self.choices(service), value=ALL))]


def build_leaderboard_panel() -> LeaderboardPanel:
    with gr.Accordion("Leaderboard", open=False, elem_id="leaderboard-box") as box:
        with gr.Row():
            category = gr.Dropdown([ALL], value=ALL, label="Prompt category", elem_id="lb-category", scale=3)
            refresh = gr.Button("Refresh", elem_id="lb-refresh", scale=0, min_width=100)
            csv_btn = gr.Button("Export votes (CSV)", elem_id="lb-csv", scale=0, min_width=160)
        csv_file = gr.DownloadButton("download", visible=False, elem_id="lb-csv-file")
        table = gr.HTML(H.notice(""), elem_id="leaderboard", padding=False)
    return LeaderboardPanel(box, category, refresh, table, csv_btn, csv_file)
