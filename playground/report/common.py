"""What both report formats say about a run, as plain strings and rows (no markup here).

Drawn from the run record only, as every panel of the page is (playground/record.py), so a
report of a saved or imported run needs no model, no torch and no gradio.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from playground.inspect.agreement import Agreement, column_label, run_agreement
from playground.inspect.diff import ColumnDiff, column_diff
from playground.inspect.probs import ProbSummary, summarize
from playground.record import FINISH_LABELS, GenerationParams, ModelRun, Run


def label(model: ModelRun) -> str:
    """"1 · smollm2-135m", as in the page's panels."""
    return column_label(model.column, model.identity.catalog_id or model.identity.name)


def outcome(model: ModelRun) -> str:
    return FINISH_LABELS.get(model.finish_reason, model.finish_reason or "not finished")


def when(timestamp: float) -> str:
    """A saved time in UTC, so a report reads the same wherever it is opened or made."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(timestamp)))
    except (TypeError, ValueError, OverflowError, OSError):
        return "unknown time"


def fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def cost(usd: float) -> str:
    return f"${usd:.6f}" if usd < 0.01 else f"${usd:.4f}"


def identity_rows(model: ModelRun) -> list[tuple[str, str]]:
    """Who answered: every identity field that is set, in reading order."""
    ident = model.identity
    rows = [
        ("model", ident.name or ident.catalog_id),
        ("catalog id", ident.catalog_id),
        ("reference", ident.reference),
        ("source", ident.source),
        ("location", ident.location),
        ("file sha256", ident.sha256),
        ("revision", ident.revision),
        ("served model", ident.served_model),
        ("fingerprint", ident.fingerprint),
        ("engine", ident.engine),
        ("device", ident.device),
        ("dtype", ident.dtype),
        ("decode path", ident.decode_path),
        ("prompt format", ident.prompt_format),
        ("context window", f"{ident.context_window:,}" if ident.context_window else ""),
        ("libraries", ", ".join(f"{k} {v}" for k, v in sorted(ident.libraries.items()))),
    ]
    return [(k, v) for k, v in rows if v]


def engine_line(model: ModelRun) -> str:
    """Device / engine / decode path in one short line for summary tables."""
    ident = model.identity
    parts = [ident.engine, ident.device, ident.dtype, ident.decode_path.split(":")[0]]
    return " · ".join(p for p in parts if p)


def param_rows(params: GenerationParams) -> list[tuple[str, str]]:
    return [
        ("max new tokens", str(params.max_new_tokens)),
        ("temperature", f"{params.temperature:g}" + (" (greedy)" if params.greedy else "")),
        ("top-p", f"{params.top_p:g}"),
        ("top-k", str(params.top_k) if params.top_k else "0 (off)"),
        ("repetition penalty", f"{params.repetition_penalty:g}"),
        ("seed", str(params.seed)),
        ("stop strings", ", ".join(repr(s) for s in params.stop) or "none"),
        ("timeout", f"{params.timeout_s:g} s"),
    ]


def metric_rows(model: ModelRun) -> list[tuple[str, str]]:
    """The column's numbers that were measured (a failed column may have none)."""
    m = model.metrics
    rows: list[tuple[str, str]] = [("finish", outcome(model))]
    if m.prompt_tokens or m.output_tokens:
        rows += [("prompt tokens", f"{m.prompt_tokens:,}"), ("output tokens", f"{m.output_tokens:,}")]
    if m.output_tokens:
        rows.append(("time to first token", f"{m.ttft_s:.3f} s"))
        if m.decode_tok_s:
            rows.append(("decode speed", f"{m.decode_tok_s:.1f} tok/s"))
        rows.append(("total", f"{m.total_s:.2f} s"))
    if model.finish_reason and model.identity.device:
        load = "already loaded" if m.load_s == 0 else f"{m.load_s:.1f} s"
        rows.append(("load", load + (" (converted cache)" if m.load_s and m.loaded_from_cache else "")))
    if m.graph_capture_s:
        rows.append(("graph capture", f"{m.graph_capture_s:.2f} s"))
    if not model.capabilities.memory:
        if m.weights_bytes:
            rows.append(("model file", fmt_bytes(m.weights_bytes)))
    else:
        if m.weights_bytes or m.kv_cache_bytes:
            memory = f"{fmt_bytes(m.weights_bytes)} weights + {fmt_bytes(m.kv_cache_bytes)} KV"
            rows.append(("memory", memory))
        if m.memory_kind and m.peak_memory_bytes:
            rows.append((m.memory_kind, fmt_bytes(m.peak_memory_bytes)))
    if m.server_prompt_tok_s:
        rows.append(("server prompt speed", f"{m.server_prompt_tok_s:.1f} tok/s"))
    if m.server_decode_tok_s:
        rows.append(("server decode speed", f"{m.server_decode_tok_s:.1f} tok/s"))
    if m.usage_prompt_tokens or m.usage_output_tokens:
        usage = f"{m.usage_prompt_tokens:,} prompt + {m.usage_output_tokens:,} output"
        rows.append(("usage (server)", usage))
    if m.cost_usd:
        rows.append(("cost", cost(m.cost_usd)))
    return rows


def notices(model: ModelRun) -> list[str]:
    """What a reader should know about a column besides its error: lacks, warnings, grounding."""
    lines = model.capabilities.lacks()
    lines += [f"{a.severity}: {a.message}" for a in model.anomalies]
    if model.grounding_notice:
        lines.append(f"grounding: {model.grounding_notice}")
    return lines


# -- prompt tokens --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenCounts:
    prompt_tokens: int
    user_text_tokens: int
    chars_per_token: float  # of the user's prompt alone; 0 when not counted
    control_tokens: int
    context_window: int
    context_share: float  # prompt tokens / context window; 0 when the window is unknown
    anomalies: int


def token_counts(run: Run, model: ModelRun) -> TokenCounts:
    prompt = len(model.prompt_pieces) or len(model.prompt_token_ids) or model.metrics.prompt_tokens
    window = model.identity.context_window
    return TokenCounts(
        prompt_tokens=prompt,
        user_text_tokens=model.user_text_tokens,
        chars_per_token=len(run.prompt) / model.user_text_tokens if model.user_text_tokens else 0.0,
        control_tokens=sum(1 for p in model.prompt_pieces if p.special),
        context_window=window,
        context_share=prompt / window if window else 0.0,
        anomalies=len(model.anomalies),
    )


def anomaly_positions(model: ModelRun) -> dict[int, str]:
    """Prompt position -> the anomaly flagged there (first one wins)."""
    out: dict[int, str] = {}
    for a in model.anomalies:
        if a.position >= 0:
            out.setdefault(a.position, f"{a.kind}: {a.message}")
    return out


VISIBLE = str.maketrans({" ": "·", "\t": "→", "\n": "↵", "\r": "␍"})


def visible(text: str) -> str:
    """Whitespace made visible, as the Tokens panel shows it."""
    return text.translate(VISIBLE)


# -- probabilities, diffs, agreement ----------------------------------------------------------------


def has_probs(model: ModelRun) -> bool:
    return bool(model.steps) and model.capabilities.logprobs


def prob_summary(model: ModelRun) -> ProbSummary | None:
    return summarize(model.steps) if has_probs(model) else None


def finite(x: float) -> float:
    return x if math.isfinite(x) else -100.0


@dataclass
class Comparison:
    baseline: ModelRun | None
    diffs: list[tuple[ModelRun, ColumnDiff]] = field(default_factory=list)
    agreement: Agreement | None = None


def compare(run: Run) -> Comparison:
    """Word diffs of every column against the first one that answered, and the lexical agreement."""
    answered = [m for m in run.models if not m.error]
    if len(run.models) < 2 or not answered:
        return Comparison(answered[0] if answered else None)
    base = answered[0]
    diffs = [(m, column_diff(base, m)) for m in run.models if m is not base]
    return Comparison(base, diffs, run_agreement(run))


def report_title(run: Run) -> str:
    return f"playground run {run.id}"


# Who made a report (the caller says): a page-made file must not claim the command line made it.
# Each: (plain words, the same for Markdown).
ORIGINS = {
    "page": ("the page (its Report button)", "the page (its Report button)"),
    "cli": ("the command line (python -m playground sessions report)",
            "the command line (`python -m playground sessions report`)"),
}


def made_by(origin: str, markdown: bool = False) -> str:
    """Who made the report, in words; ValueError for an origin not in ORIGINS."""
    if origin not in ORIGINS:
        raise ValueError(f"unknown report origin {origin!r} ({' or '.join(ORIGINS)})")
    return ORIGINS[origin][1 if markdown else 0]
