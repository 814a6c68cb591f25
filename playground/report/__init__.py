"""Reports of a saved run: one self-contained HTML file, or Markdown for an issue tracker.

Both are drawn from the run record only (no model, no gradio, no torch). The format comes
from the file name: `.html` / `.htm` or `.md` / `.markdown`.
"""

from __future__ import annotations

from pathlib import Path

from playground.record import Run

FORMATS = {".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown"}
EXTENSIONS = {"html": ".html", "markdown": ".md"}


class ReportError(ValueError):
    """A report that cannot be made as asked (e.g. an unknown file extension)."""


def report_format(path: str | Path) -> str:
    """"html" or "markdown", from the file's extension; ReportError for anything else."""
    suffix = Path(path).suffix.lower()
    fmt = FORMATS.get(suffix)
    if fmt is None:
        shown = f"the extension {suffix!r}" if suffix else "no extension"
        raise ReportError(f"cannot tell the report format from {str(path)!r} ({shown}): "
                          "name the file .html (a self-contained page) or .md (Markdown)")
    return fmt


def render_report(run: Run, fmt: str, origin: str = "cli") -> str:
    """The report in `fmt`; `origin` is who asks ("page" or "cli"), so the file says which made it."""
    if fmt == "html":
        from playground.report.html import render_html

        return render_html(run, origin)
    if fmt == "markdown":
        from playground.report.markdown import render_markdown

        return render_markdown(run, origin)
    raise ReportError(f"unknown report format {fmt!r} (html or markdown)")


def report_filename(run: Run, fmt: str) -> str:
    return f"playground-report-{run.id}{EXTENSIONS[fmt]}"


__all__ = ["ReportError", "render_report", "report_filename", "report_format"]
