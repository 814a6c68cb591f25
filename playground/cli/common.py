"""What every command shares: bad input (CliError), terminal-safe text, settings, the catalog, flags.

Kept light (no torch, no Gradio): every command imports it, and `compare` starts loading
its models only once its input has been checked here.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from playground.config import Settings
from playground.controls import strip_controls

if TYPE_CHECKING:
    from playground.catalog import Catalog
    from playground.record import Run


class CliError(Exception):
    """Bad input: printed as `playground: error: ...`, exit status 2."""


def terminal_safe(text: str) -> str:
    """Text from a saved record or a model, fit for a terminal: no control characters but tab and newline
    (playground/controls.py: escape sequences in saved text never reach the terminal)."""
    return strip_controls(text)


def add_common(p: argparse.ArgumentParser) -> None:
    """The flags every command has: which catalog, where the data lives, which device."""
    p.add_argument("--catalog", help="TOML model catalog file (env PLAYGROUND_CATALOG)")
    p.add_argument("--data-dir", help="saved data and model caches (env PLAYGROUND_DATA_DIR)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="force a device (default: cuda if present)")


def catalog(settings: Settings, extra: list[str]) -> Catalog:
    """The catalog of these settings (plus `extra` models); a broken catalog file is bad input."""
    from playground.catalog import Catalog, CatalogError

    try:
        return Catalog.build(settings.catalog_file, settings.models + extra)
    except CatalogError as exc:
        raise CliError(str(exc)) from exc


def catalog_with(settings: Settings, models: list[str] | None) -> Catalog:
    """The catalog, after checking that every --model names something that can be found."""
    if not models:
        raise CliError("give at least one --model (see `python -m playground catalog`)")
    found = catalog(settings, [])
    for ref in models:
        try:
            found.get(ref)
        except ValueError as exc:  # CatalogError
            raise CliError(str(exc)) from exc
    return found


def text_arg(value: str, what: str) -> str:
    """A prompt or system text from argv or stdin, invalid UTF-8 replaced by U+FFFD (with a notice)."""
    from playground.params import replace_invalid

    text, replaced = replace_invalid(value)
    if replaced:
        print(f"playground: the {what} held invalid UTF-8; replaced with U+FFFD (\ufffd)", file=sys.stderr)
    return text


def read_stdin() -> str:
    """All of stdin, undecodable bytes kept (surrogateescape) so that text_arg can say they were replaced."""
    return sys.stdin.buffer.read().decode("utf-8", "surrogateescape")


def print_human(run: Run, streamed: bool) -> None:
    """Each column's answer and figures; every text goes through terminal_safe (it may come from a file)."""
    for model in run.models:
        m = model.metrics
        if not streamed:
            print(f"\n=== [{model.column}] {terminal_safe(model.identity.catalog_id)} ===")
            print(terminal_safe(model.text))
        else:
            print()
        if model.error:
            print(f"error: {terminal_safe(model.error)}", file=sys.stderr)
        print(
            f"-- {m.prompt_tokens} prompt tokens, {m.output_tokens} output tokens, "
            f"ttft {m.ttft_s:.2f} s, {m.decode_tok_s:.1f} tok/s, {terminal_safe(model.finish_reason)}",
            file=sys.stderr,
        )
