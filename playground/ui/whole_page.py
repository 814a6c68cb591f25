"""The whole page as one object: every part of it, so that a run is drawn into all of them from its record.

Built by playground/ui/app.py from the parts; the run buttons (playground/ui/runs.py) draw into it.
The parts that need the page back (blind.py, session_bar.py) name what they use as a protocol of their
own rather than import this module, so no import runs in a circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from playground.record import Run
from playground.service import SessionError
from playground.ui import html as H
from playground.ui.columns import pool_html
from playground.ui.runner import replay_banner

if TYPE_CHECKING:
    from playground.ui.attention_view import AttentionPanel
    from playground.ui.blind import BlindPanel
    from playground.ui.columns import Columns
    from playground.ui.diff_view import ComparePanel
    from playground.ui.page import Shell
    from playground.ui.prob_view import ProbsPanel
    from playground.ui.runner import PromptArea
    from playground.ui.session_bar import SessionBar
    from playground.ui.sources_view import SourcesPanel
    from playground.ui.token_view import TokensPanel


@dataclass
class Page:
    """Every part of the page, so that a run can be drawn into all of them from its record."""

    shell: Shell
    prompt: PromptArea
    columns: Columns
    bar: SessionBar
    rerun_report: Any
    tokens: TokensPanel
    attention: AttentionPanel
    probs: ProbsPanel
    sources: SourcesPanel
    compare: ComparePanel
    blind: BlindPanel | None = None
    follow_row: Any = None  # the follow-up row: hidden until a run has answered

    @property
    def panels(self) -> list[Any]:
        return [self.tokens, self.attention, self.probs, self.compare, self.sources]

    def follow_shown(self, record: Run | None) -> dict[Any, Any]:
        """The follow-up row shown once a saved run is on screen (a run with no saved id has no next turn)."""
        if self.follow_row is None or record is None:
            return {}
        return {self.follow_row: gr.update(visible=True)}

    def blind_run(self, record: Run) -> bool:
        """Whether a saved run was run blind (its models' names stay hidden until a vote)."""
        try:
            return self.shell.service.blind_order(record.id, len(record.models)) is not None
        except (SessionError, OSError):
            return False

    def pool_line(self) -> str:
        return pool_html(self.shell.service.pool_state())

    def evidence(self, record: Run | None) -> dict[Any, Any]:
        """Every inspection panel for a run, drawn from its record (which becomes the run shown)."""
        if record is None:
            return {}
        updates: dict[Any, Any] = {self.shell.shown: record}
        for panel in self.panels:
            updates.update(panel.render(record))
        return updates

    def show(self, record: Run, message: str, replay: bool = False) -> dict[Any, Any]:
        """Draw a saved run into the whole page from its record alone (no model is touched).

        A replay (a share link, an import) is read-only: a banner says so, every setting shows what the
        run was made with and cannot be changed, and Edit and run takes Run's place."""
        columns, note = self.columns.show(record)
        drawn = {
            **self.prompt.show(record, self.blind_run(record)), **columns,
            self.shell.notice: H.notice(message + note), self.rerun_report: "",
            **self.bar.updates(record), **self.evidence(record), **self.follow_shown(record),
        }
        if self.blind:  # merged: a blind replay takes the pickers off the page, keeping their values
            drawn = merge_updates(drawn, self.blind.replay(self, record))
        return merge_updates(drawn, self.editable(not replay, replay_banner(record) if replay else ""))

    def editable(self, on: bool, banner: str = "") -> dict[Any, Any]:
        """The settings editable with Run (on), or locked under the replay banner with Edit and run."""
        return {**self.prompt.editable(on, banner), **self.columns.editable(on)}

    def lock_outputs(self) -> list[Any]:
        return [*self.prompt.lock_outputs(), *self.columns.lock_outputs()]

    def run_outputs(self) -> list[Any]:
        """What a run may update while it streams and when it ends."""
        area = self.prompt
        follow = [self.follow_row] if self.follow_row is not None else []
        return [area.run_btn, area.stop_btn, area.prompt, area.system, area.settings, *follow,
                self.shell.notice, self.shell.shown,
                self.columns.loaded, self.rerun_report, *self.bar.outputs, *self.columns.outputs(),
                *(c for panel in self.panels for c in panel.outputs),
                *(self.blind.outputs if self.blind else [])]

    def show_outputs(self) -> list[Any]:
        """What drawing a saved run may update: a run's outputs, the columns' set-up and the locks."""
        return list(dict.fromkeys([*self.run_outputs(), *self.columns.fill_outputs(), *self.lock_outputs()]))


def merge_updates(first: dict[Any, Any], then: dict[Any, Any]) -> dict[Any, Any]:
    """Both sets of updates: a component in both gets the second's properties on top of the first's value
    (a plain dict merge would drop the value, e.g. a replayed setting when it is also locked)."""
    merged = dict(first)
    for component, update in then.items():
        before = merged.get(component)
        if component in merged and isinstance(update, dict):
            base = dict(before) if isinstance(before, dict) else {"value": before}
            merged[component] = {**base, **update}
        else:
            merged[component] = update
    return merged
