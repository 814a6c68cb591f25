// Ctrl+Enter (Cmd+Enter on macOS) runs the prompt from anywhere on the page; not in a read-only replay,
// where Run is hidden (Edit and run takes its place).
document.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
  const button = document.querySelector("#run-btn");
  if (button && !button.disabled && button.offsetParent !== null) {
    event.preventDefault();
    button.click();
  }
});

// Each answer box (#out-N, a fixed height with its own scroll) follows its stream: it stays at the end
// while text arrives, unless the reader scrolled up in it; scrolling back to the end follows again.
(() => {
  const AT_END_PX = 24;
  const follow = new WeakMap(); // box -> following the end?
  const atEnd = (box) => box.scrollHeight - box.scrollTop - box.clientHeight <= AT_END_PX;
  document.addEventListener("scroll", (event) => {
    const box = event.target;
    if (box instanceof Element && box.matches(".block.pg-output")) follow.set(box, atEnd(box));
  }, true);
  setInterval(() => {
    for (const box of document.querySelectorAll("#columns .block.pg-output")) {
      if (box.scrollHeight <= box.clientHeight + AT_END_PX) follow.set(box, true); // fits: a new answer
      else if (follow.get(box) !== false && !atEnd(box)) box.scrollTop = box.scrollHeight;
    }
  }, 150);
})();

// A blind run awaiting its vote (the arena, playground/ui/arena.py): 1 / 2 vote A / B better (3... for
// more columns), T tie, B both bad; N starts the next battle once the models are revealed. Only when no
// text box has the focus (typing a prompt or a category must not vote) and no modifier key is held.
(() => {
  const typing = (el) => el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
  const shown = (el) => el && el.offsetParent !== null && !el.disabled;
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(document.activeElement)) return;
    const key = event.key.toLowerCase();
    let target = null;
    if (/^[1-9]$/.test(key)) target = document.querySelector(`#vote-${String.fromCharCode(96 + Number(key))}`);
    else if (key === "t") target = document.querySelector("#vote-tie");
    else if (key === "b") target = document.querySelector("#vote-bad");
    else if (key === "n") target = document.querySelector("#arena-next");
    if (!shown(target) || (key !== "n" && !shown(document.querySelector("#vote-box")))) return;
    event.preventDefault();
    target.click();
  });
  // When the vote buttons appear, bring them into view at the bottom of the window, the answers above.
  let asked = false;
  setInterval(() => {
    const first = document.querySelector("#vote-a");
    const now = shown(first);
    if (now && !asked) document.querySelector("#vote-buttons")?.scrollIntoView({ block: "end" });
    asked = now;
  }, 200);
})();

// The Focus button shows its icon only when four columns share the row (assets/style.css): a hover says
// what it does. Set on every Focus button, the ones Add column makes later included.
document.addEventListener("pointerover", (event) => {
  const button = event.target instanceof Element && event.target.closest(".pg-focus-btn");
  if (button && !button.title) button.title = "Focus: this column full width, the others hidden (press again to undo)";
});
