"""Pure inspection helpers: lists and numbers in, data out (no torch, no gradio)."""
