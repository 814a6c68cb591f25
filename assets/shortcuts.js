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
