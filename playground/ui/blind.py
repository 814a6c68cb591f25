"""Blind mode on the page: the toggle near Run, columns drawn as Model A, B, ..., the vote, the reveal.

A blind run is drawn from a masked copy of its record (playground/inspect/blind.py) into the
slots it ran in, letter A in the first slot, B in the second, ... with the run's columns
shuffled among the letters. The model pickers of those slots are taken off the page meanwhile
(visible=False: not in the page's HTML at all, where CSS would only hide them from sight, not from
View Source or a screen reader), and their per-column parameters are hidden. The letter order is
stored with the run, so a replay shows the same letters and takes a vote too. Voting stores the vote, then
redraws the run from its real record in the slots it was run from: names, pickers and
parameters back in place, and a line saying which letter was which model.

Votes: with two columns "A is better", "B is better", "Tie", "Both bad"; with three or more,
one "X is best" per column, "Tie" and "All bad" (one best answer is what a reader of several
answers can say reliably; a full ranking is slow to give and noisy). Each voter votes once
per run: the names are revealed after the first vote.
"""

from __future__ import annotations

import html
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import gradio as gr

from playground.inspect.blind import label, letter, letter_columns, letter_status, mask, shuffled_order
from playground.record import Run
from playground.service import SessionError, VoteError
from playground.sessions.votes import MAX_CATEGORY
from playground.ui import html as H
from playground.ui.page import Shell, owner_of

if TYPE_CHECKING:
    from playground.ui.columns import Columns
    from playground.ui.session_bar import SessionBar

CATEGORIES = ["", "general", "coding", "math", "reasoning", "writing", "facts", "other"]
# The loaded-models line while a vote waits: the models loaded name the ones that ran.
POOL_HIDDEN = ('<div class="pg-muted">Loaded models: hidden until the vote (they would name the '
               "columns).</div>")
# While a blind run is shown: hide the slots' top rows and parameters from sight; the pickers
# themselves (the model names) leave the page (BlindPanel.pickers_shown).
HIDE_PICKERS = ("<style>#columns .pg-col-top, #columns .pg-column .gr-accordion"
                " { display: none !important; }</style>")


class Page(Protocol):
    """What blind mode needs of the whole page (playground/ui/whole_page.py's Page): named here, as a
    protocol, because the page is built from this part: importing it back would close a circle."""

    shell: Shell
    columns: Columns
    bar: SessionBar

    def evidence(self, record: Run | None) -> dict[Any, Any]: ...

    def pool_line(self) -> str: ...

    def run_outputs(self) -> list[Any]: ...


@dataclass
class BlindView:
    """The blind run on screen: which run column each letter shows, and the slots it is drawn in."""

    run_id: str
    order: list[int]  # order[i] = the run column shown as letter i
    slots: list[int]  # slots[c] = the page slot run column c ran in (letter i is drawn in slots[i])
    voted: bool = False

    def to_state(self) -> dict:
        return {"run_id": self.run_id, "order": self.order, "slots": self.slots, "voted": self.voted}

    @classmethod
    def from_state(cls, data: object) -> BlindView | None:
        if not isinstance(data, dict):
            return None
        return cls(str(data["run_id"]), list(data["order"]), list(data["slots"]), bool(data["voted"]))


def vote_labels(n: int) -> list[str]:
    """The button labels for n columns: one per letter, then tie and bad."""
    if n == 2:
        return ["A is better", "B is better", "Tie", "Both bad"]
    return [f"{letter(i)} is best" for i in range(n)] + ["Tie", "All bad"]


def outcome_text(outcome: str, winner: int, n: int) -> str:
    if outcome == "win":
        return f"{letter(winner)} is {'better' if n == 2 else 'best'}"
    return "Tie" if outcome == "tie" else ("Both bad" if n == 2 else "All bad")


def reveal_html(record: Run, order: list[int], outcome: str, winner: int, category: str, new: bool) -> str:
    """Which letter was which model, and the vote (everything escaped: the category is user text)."""
    said = outcome_text(outcome, winner, len(order))
    head = "Vote stored" if new else "You had already voted on this run (that vote is kept)"
    cat = f" · category <b>{html.escape(category)}</b>" if category else ""
    items = "".join(
        f"<li><b>{html.escape(label(i))}</b> was <span class=\"pg-model\">"
        f"{html.escape(record.models[col].identity.catalog_id)}</span> (column {col + 1})</li>"
        for i, col in enumerate(order))
    return (f'<div class="pg-vote-result" role="status">{head}: <b>{html.escape(said)}</b>{cat}.'
            f"<ul>{items}</ul></div>")


@dataclass
class BlindPanel:
    toggle: Any  # the checkbox near Run (built by the prompt area)
    state: Any
    style: Any
    box: Any
    prompt: Any
    buttons: list[Any]  # one per possible letter, then tie, then bad
    category: Any
    result: Any
    pickers: list[Any] = field(default_factory=list)  # each column slot's model dropdown

    @property
    def outputs(self) -> list[Any]:
        return [self.state, self.style, self.box, self.prompt, self.category, self.result, *self.buttons,
                *self.pickers]

    def pickers_shown(self, hidden_slots: Sequence[int] = ()) -> dict[Any, Any]:
        """The slots' model pickers, those of `hidden_slots` taken out of the page (not rendered)."""
        return {picker: gr.update(visible=i not in hidden_slots) for i, picker in enumerate(self.pickers)}

    # -- drawing ---------------------------------------------------------------------

    def begin(self, on: bool, chosen: list[int]) -> BlindView | None:
        """A new blind run's view, when Blind is on and two or more columns run: its letters in a random
        order from a fresh seed (the order is stored with the run, VoteBook.mark_blind)."""
        if not on or len(chosen) < 2:
            return None
        seed = random.SystemRandom().randrange(2**32)
        return BlindView("", shuffled_order(len(chosen), random.Random(seed)), list(chosen))

    @staticmethod
    def drawer(columns: Columns, view: BlindView | None) -> Any:
        """columns.draw, or its blind twin: letters in place of names, letter i in the i-th slot."""
        if view is None:
            return columns.draw

        def draw(record: Run, chosen: list[int], dirty: set[int], status: dict[int, str]) -> dict:
            masked = mask(record, view.order)
            return columns.draw(masked, view.slots, letter_columns(dirty, view.order),
                                letter_status(status, record, view.order))

        return draw

    def hidden(self) -> dict[Any, Any]:
        """No blind run on screen."""
        return {self.state: None, self.style: "", self.box: gr.update(visible=False), self.result: "",
                **self.pickers_shown()}

    def running(self, view: BlindView | None) -> dict[Any, Any]:
        """At the start of a run: pickers hidden for a blind one, the vote box hidden either way."""
        if view is None:
            return self.hidden()
        return self.hidden() | {self.style: HIDE_PICKERS, **self.pickers_shown(view.slots)}

    def ask(self, page: Page, record: Run, view: BlindView, note: str = "") -> dict[Any, Any]:
        """A blind run to vote on: every panel drawn from its masked copy, the vote buttons shown."""
        n = len(view.order)
        masked = mask(record, view.order)
        labels = vote_labels(n)
        updates: dict[Any, Any] = {
            **page.evidence(masked), self.state: view.to_state(), self.style: HIDE_PICKERS,
            **self.pickers_shown(view.slots),
            self.box: gr.update(visible=True), self.result: note,
            self.prompt: H.notice("Blind run: the columns are shown as Model A, B, … in a shuffled order. "
                                  "Vote to store your judgement and reveal the models."),
            self.category: gr.update(visible=True), page.bar.again_btn: gr.update(interactive=False),
            page.columns.loaded: POOL_HIDDEN,  # which models are loaded would say which ran
        }
        letters, tie, bad = self.buttons[:-2], self.buttons[-2], self.buttons[-1]
        for i, button in enumerate(letters):
            updates[button] = gr.update(visible=i < n, value=labels[i] if i < n else "")
        updates[tie] = gr.update(visible=True, value=labels[-2])
        updates[bad] = gr.update(visible=True, value=labels[-1])
        return updates

    def finished(self, page: Page, record: Run, saved_id: str, view: BlindView | None) -> dict[Any, Any]:
        """After a run: a saved blind run asks for the vote; one that could not be saved is revealed."""
        if view is None:
            return {}
        if not saved_id:
            return self.reveal(page, record, view, "The run could not be saved, so it cannot take a vote: "
                               "the models are shown.")
        view.run_id = saved_id
        page.shell.service.mark_blind(saved_id, view.order)
        return self.ask(page, record, view)

    def replay(self, page: Page, record: Run) -> dict[Any, Any]:
        """A saved run drawn by Page.show: a blind one is masked again, with its stored letters."""
        service = page.shell.service
        try:
            order = service.blind_order(record.id, len(record.models))
        except (SessionError, OSError):
            order = None
        if order is None or len(record.models) > page.columns.size:
            return self.hidden()
        view = BlindView(record.id, order, list(range(len(record.models))))
        draw = self.drawer(page.columns, view)(record, view.slots, set(range(len(order))), {})
        return {**draw, **self.ask(page, record, view)}

    def reveal(self, page: Page, record: Run, view: BlindView, message: str) -> dict[Any, Any]:
        """The real record drawn back into the slots it ran in; pickers and parameters shown again."""
        n = len(record.models)
        draw = page.columns.draw(record, view.slots, set(range(n)), {})
        view.voted = True
        return {**draw, **page.evidence(record), self.state: view.to_state(), self.style: "",
                page.columns.loaded: page.pool_line(),
                self.box: gr.update(visible=True), self.result: message, self.prompt: "",
                self.category: gr.update(visible=False), page.bar.again_btn: gr.update(interactive=True),
                **{b: gr.update(visible=False) for b in self.buttons}, **self.pickers_shown()}

    # -- events ----------------------------------------------------------------------

    def wire(self, page: Page, after_vote: list[tuple[Any, Any]] | None = None) -> None:
        """Each vote button stores its vote and reveals; `after_vote`: (component, fn) to redraw too."""
        shell = page.shell
        service = shell.service
        outputs = list(dict.fromkeys([*self.outputs, *page.run_outputs(), *(c for c, _ in after_vote or [])]))
        n_letters = len(self.buttons) - 2

        for index, button in enumerate(self.buttons):
            outcome = "win" if index < n_letters else ("tie" if index == n_letters else "both_bad")
            winner = index if outcome == "win" else -1

            def vote(state: object, category: str | None, browser_id: object, request: gr.Request,
                     outcome: str = outcome, winner: int = winner) -> dict[Any, Any]:
                view = BlindView.from_state(state)
                if view is None or view.voted:
                    return {shell.notice: H.notice("no blind run waits for a vote", "warn")}
                voter = owner_of(request, browser_id)
                try:
                    cast = service.vote(view.run_id, outcome, winner, voter, category or "")
                    record = service.get(view.run_id)
                except (SessionError, VoteError) as exc:
                    return {shell.notice: H.notice(str(exc), "error")}
                done = cast.vote
                message = reveal_html(record, view.order, done.outcome, done.winner, done.category, cast.new)
                updates = self.reveal(page, record, view, message)
                updates[shell.notice] = H.notice("vote stored; the models are revealed" if cast.new else
                                                 "you had already voted on this run; the models are revealed")
                for component, redraw in after_vote or []:
                    updates[component] = redraw()
                return updates

            button.click(vote, inputs=[self.state, self.category, shell.owner], outputs=outputs)


def build_blind_toggle() -> Any:
    """The checkbox near Run."""
    return gr.Checkbox(False, label="Blind: hide the model names, vote, then reveal", elem_id="blind-toggle")


def build_blind_panel(toggle: Any, max_columns: int, pickers: list[Any]) -> BlindPanel:
    """The vote box under the columns (hidden until a blind run finishes)."""
    with gr.Group(visible=False, elem_id="vote-box") as box:
        prompt = gr.HTML(elem_id="vote-prompt", padding=False)
        with gr.Row(elem_id="vote-buttons"):
            buttons = [gr.Button(f"{letter(i)} is better", visible=False, elem_id=f"vote-{letter(i).lower()}",
                                 variant="primary", min_width=110) for i in range(max_columns)]
            buttons.append(gr.Button("Tie", visible=False, elem_id="vote-tie", min_width=90))
            buttons.append(gr.Button("Both bad", visible=False, elem_id="vote-bad", min_width=90))
            category = gr.Dropdown(CATEGORIES, value="", allow_custom_value=True, elem_id="vote-category",
                                   label=f"Prompt category (optional: pick or type, ≤ {MAX_CATEGORY} chars)",
                                   scale=2)
        result = gr.HTML(elem_id="vote-result", padding=False)
    style = gr.HTML("", elem_id="blind-style", padding=False)
    return BlindPanel(toggle, gr.State(None), style, box, prompt, buttons, category, result, list(pickers))
