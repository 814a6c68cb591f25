"""The Gradio API endpoint `/compare`: one prompt on several models, run to the end and saved.

For scripts (gradio_client): the same run service as the page, no widgets. Bad
input is a gr.Error with a sentence saying what is wrong, never a traceback.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import secrets
from collections.abc import Callable
from typing import Any

import gradio as gr

from playground.params import build_params, validate_params
from playground.record import GenerationParams
from playground.requests import ColumnRequest, RequestError, RunRequest
from playground.service import RunService
from playground.ui.page import login_name
from playground.ui.runner import search_options
from playground.ui.text import REPAIRED_NOTICE, clean_text

log = logging.getLogger(__name__)
API_OWNER = "api"  # who owns runs made through the API on a server without --auth
GROUNDINGS = ("none", "local", "web")
_INT_FIELDS = {"max_new_tokens", "top_k", "seed"}
_FLOAT_FIELDS = {"temperature", "top_p", "repetition_penalty", "timeout_s"}
PARAM_FIELDS = tuple(f.name for f in dataclasses.fields(GenerationParams))


def _field(name: str, value: Any, where: str) -> Any:
    """One parameter of one model, checked for its type (ranges are validate_params's job)."""
    if name == "stop":
        stops = [value] if isinstance(value, str) else value
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise ValueError(f"{where}.stop must be a string or a list of strings")
        return [clean_text(s)[0] for s in stops]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}.{name} must be a number, got {type(value).__name__}")
    if name in _INT_FIELDS:
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise ValueError(f"{where}.{name} must be a whole number, got {value}")
        return int(value)
    return float(value)


def params_from(value: dict | list[dict] | None, n: int) -> list[GenerationParams]:
    """Per-model parameters from one object for all models, or a list with one per model.

    Missing fields take their defaults; unknown fields, wrong types and out-of-range values are
    refused with a sentence naming the model and the field.
    """
    if value is None:
        return [build_params() for _ in range(n)]
    if isinstance(value, dict):
        items = [value] * n
    elif isinstance(value, list):
        if len(value) != n:
            raise ValueError(f"params: give one object for every model or a list of {n} (one per model), "
                             f"got a list of {len(value)}")
        items = value
    else:
        raise ValueError("params must be an object or a list of objects (one per model)")
    out = []
    for i, item in enumerate(items):
        where = f"params for model {i + 1}"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected an object, got {type(item).__name__}")
        unknown = sorted(set(item) - set(PARAM_FIELDS))
        if unknown:
            raise ValueError(f"{where}: unknown fields {unknown} (known: {', '.join(PARAM_FIELDS)})")
        params = build_params({k: _field(k, v, where) for k, v in item.items()})
        problems = validate_params(params)
        if problems:
            raise ValueError(f"{where}: " + "; ".join(problems))
        out.append(params)
    return out


def compare_request(prompt: Any, system_prompt: Any, models: Any, params: Any, max_models: int
                    ) -> tuple[RunRequest, bool]:
    """The API's arguments as a run request; True when typed text had to be repaired."""
    if not isinstance(prompt, str) or not isinstance(system_prompt or "", str):
        raise ValueError("prompt and system_prompt must be strings")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m.strip()
                                                               for m in models):
        raise ValueError("models must be a non-empty list of model references (catalog ids, paths, hub ids)")
    if len(models) > max_models:
        raise ValueError(f"at most {max_models} models per run (PLAYGROUND_MAX_COLUMNS), got {len(models)}")
    prompt, bad_prompt = clean_text(prompt)
    system, bad_system = clean_text(system_prompt or "")
    refs = [clean_text(m.strip()) for m in models]
    per_model = params_from(params, len(models))
    columns = [ColumnRequest(ref, p) for (ref, _), p in zip(refs, per_model, strict=True)]
    repaired = bad_prompt or bad_system or any(bad for _, bad in refs)
    return RunRequest(prompt=prompt, system_prompt=system, columns=columns), repaired


def add_compare_endpoint(service: RunService) -> None:
    """Register `/compare` on the Blocks being built (API only: no widget on the page)."""
    gr.api(compare_endpoint(service), api_name="compare", concurrency_limit=4)


def compare_endpoint(service: RunService) -> Callable[..., dict]:
    """The `/compare` function: every failure is a gr.Error with a sentence, never a bare AppError."""
    settings = service.settings

    def compare(
        prompt: str,
        system_prompt: str = "",
        models: list[str] | None = None,
        params: dict | list[dict] | None = None,
        grounding: str = "none",
        request: gr.Request = None,  # type: ignore[assignment] - filled in by Gradio
    ) -> dict:
        """Run one prompt on several models and save the run.

        models: model references (catalog ids; paths and hub ids where the server allows them).
        params: GenerationParams fields (max_new_tokens, temperature, top_p, top_k,
        repetition_penalty, seed, stop, timeout_s), one object for all models or a list with one
        per model; missing fields take their defaults.
        grounding: "none", "local" (the server's corpus) or "web": one search, the same sources
        for every model. Returns the run record, plus `saved_id` (the run's id: open it at
        /?session=<saved_id>) and `summary`.
        """
        if grounding not in GROUNDINGS:
            raise gr.Error(f"grounding must be one of {', '.join(GROUNDINGS)}, got {grounding!r}")
        try:
            request_, repaired = compare_request(prompt, system_prompt, models, params, settings.max_columns)
        except ValueError as exc:
            raise gr.Error(str(exc)) from exc
        owner = login_name(request) or API_OWNER
        options = search_options(settings, grounding, 5, False)
        try:
            outcome = service.run(request_, f"api-{secrets.token_hex(8)}", owner, options)
        except RequestError as exc:
            raise gr.Error(str(exc)) from exc
        except Exception as exc:  # a fault of the server's: the log has the traceback, the client a sentence
            log.exception("/compare failed")
            raise gr.Error(f"the run failed on the server ({type(exc).__name__}); "
                           "the server's log has the details") from exc
        summary = outcome.summary + (f"; {REPAIRED_NOTICE}" if repaired else "")
        return {"saved_id": outcome.saved_id or None, "summary": summary, **outcome.run.to_dict()}

    return compare
