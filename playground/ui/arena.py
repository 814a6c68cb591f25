"""The arena loop: Battle picks anonymous models and a prompt, runs them blind, Next starts the next round.

A thin layer over blind mode (playground/ui/blind.py): Battle puts the drawn models into the first
slots (their pickers taken off the page at once, so no name shows between the draw and the run),
ticks Blind, puts the round's prompt in the prompt box and presses Run; the blind run then asks for
the vote under the answers, stores it and reveals. Keys 1 / 2 / T / B vote (assets/shortcuts.js).
The draw itself is playground/arena.py's (through RunService.arena_draw), from a seed drawn here from
the system's random source; the seed is shown only after the vote (with the seed and the pool anyone
could compute the models), and then kept with the run (VoteBook.record_draw, table arena_draws).
"""

from __future__ import annotations

import contextlib
import html
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from playground.service import ArenaError, SessionError
from playground.ui import html as H
from playground.ui.blind import HIDE_PICKERS

if TYPE_CHECKING:
    from playground.ui.blind import BlindPanel
    from playground.ui.columns import Columns
    from playground.ui.page import Shell
    from playground.ui.runner import PromptArea

# Press Run once the draw is on the page (Gradio has applied the outputs by the time .then runs).
RUN_JS = """() => {
  if (!document.querySelector('#arena-status [data-arena="ready"]')) return;
  const run = document.querySelector('#run-btn');
  if (run && !run.disabled) run.click();
}"""


@dataclass
class ArenaPanel:
    battle_btn: Any
    n: Any  # models per battle
    status: Any
    next_btn: Any
    state: Any  # {"seed", "round", "prompt", "voted"}

    def wire(self, shell: Shell, area: PromptArea, columns: Columns, blind: BlindPanel) -> None:
        service = shell.service
        slots = columns.slots
        outputs = [area.prompt, area.blind, columns.active, blind.style, blind.category, self.state,
                   self.status, self.next_btn, shell.notice, *(s.model for s in slots),
                   *(s.box for s in slots)]

        def battle(prompt: str | None, n: object, state: object) -> dict[Any, Any]:
            last = state if isinstance(state, dict) else {}
            seed = int(last.get("seed") or random.SystemRandom().randrange(2**32))
            round_no = int(last.get("round", -1)) + 1
            text = prompt or ""
            typed = text if text.strip() and text != last.get("prompt") else ""
            try:
                count = min(int(n or 2), columns.size)
                draw = service.arena_draw(count, seed, round_no, typed)
            except (ArenaError, ValueError) as exc:
                return {shell.notice: H.notice(str(exc), "error"), self.status: ""}
            item = draw.prompt
            where = "your prompt" if draw.typed else f"prompt {html.escape(item.id or str(round_no + 1))}"
            cat = f" ({html.escape(item.category)})" if item.category else ""
            flags = [i < count for i in range(columns.size)]
            updates: dict[Any, Any] = {
                area.prompt: item.prompt, area.blind: True, columns.active: flags, blind.style: HIDE_PICKERS,
                blind.category: item.category,
                self.state: {"seed": seed, "round": round_no, "prompt": item.prompt, "voted": False,
                             "prompt_id": "" if draw.typed else item.id},
                self.status: (f'<span data-arena="ready">Round {round_no + 1} · {where}{cat} · '
                              f"{count} anonymous models</span>"),
                self.next_btn: gr.update(visible=False),
                shell.notice: H.notice(f"battle round {round_no + 1}: running {count} anonymous models…"),
            }
            for i, slot in enumerate(slots):
                updates[slot.box] = gr.update(visible=flags[i])
                updates[slot.model] = gr.update(value=draw.models[i], visible=False) if i < count else \
                    gr.update(visible=False)
            return updates

        for trigger in (self.battle_btn.click, self.next_btn.click):
            trigger(battle, inputs=[area.prompt, self.n, self.state], outputs=outputs,
                    queue=False).then(None, js=RUN_JS)

        def voted(state: object, shown: object) -> dict[Any, Any]:
            """After a vote in a battle: Next, the draw's seed (safe to show now) kept with the run."""
            if not isinstance(state, dict) or state.get("voted"):  # a vote outside a battle
                return {self.next_btn: gr.update()}
            done = {**state, "voted": True}
            run_id = shown.get("run_id") if isinstance(shown, dict) else ""
            if run_id:
                with contextlib.suppress(SessionError, OSError):  # the vote stands without the draw's record
                    service.record_arena_draw(str(run_id), int(state["seed"]), int(state["round"]),
                                              str(state.get("prompt_id", "")))
            return {self.state: done, self.next_btn: gr.update(visible=True),
                    self.status: (f"Round {int(state['round']) + 1} voted · draw seed {int(state['seed'])}, "
                                  f"round {int(state['round'])} (playground/arena.py) · Next starts the next "
                                  "round (key N)")}

        for button in blind.buttons:
            button.click(voted, inputs=[self.state, blind.state],
                         outputs=[self.state, self.next_btn, self.status])


def build_arena(max_columns: int) -> ArenaPanel:
    """The arena row under the vote box: Battle, models per battle, the round line, Next."""
    with gr.Row(elem_id="arena-bar", equal_height=True):
        battle = gr.Button("⚔ Battle", variant="secondary", elem_id="arena-battle", scale=0, min_width=120)
        n = gr.Dropdown([str(i) for i in range(2, max_columns + 1)], value="2", label="Models per battle",
                        elem_id="arena-n", scale=0, min_width=150)
        status = gr.HTML("", elem_id="arena-status", padding=False)
        next_btn = gr.Button("Next ▶ (N)", variant="primary", visible=False, elem_id="arena-next", scale=0,
                             min_width=130)
    return ArenaPanel(battle, n, status, next_btn, gr.State(None))
