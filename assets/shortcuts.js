// Ctrl+Enter (Cmd+Enter on macOS) runs the prompt from anywhere on the page.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
  const button = document.querySelector("#run-btn");
  if (button && !button.disabled) {
    event.preventDefault();
    button.click();
  }
});
