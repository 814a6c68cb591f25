"""`tokenize`: the tokens each model sees and the anomaly checks, without generating."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from playground.cli.common import CliError, add_common, catalog_with
from playground.config import settings_from_args
from playground.params import build_params, params_from_flags

if TYPE_CHECKING:
    from playground.record import ModelRun, Run


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `tokenize` subcommand and its flags."""
    tokenize = sub.add_parser("tokenize", help="tokens and anomaly checks per model, without generating")
    add_common(tokenize)
    tokenize.add_argument("--model", action="append", help="model (repeat for more)")
    tokenize.add_argument("--system", help="system prompt")
    tokenize.add_argument("--max-new-tokens", type=int, default=build_params().max_new_tokens,
                          help="for the context-window check")
    tokenize.add_argument("--specials-as-text", action="store_true",
                          help="tokenize special-token strings in the text as plain text")
    tokenize.add_argument("--show-tokens", action="store_true", help="print id:token for every prompt token")
    tokenize.add_argument("--json", action="store_true")
    tokenize.add_argument("text", help="the text ('-' reads stdin)")
    tokenize.set_defaults(func=cmd_tokenize)


def cmd_tokenize(args: argparse.Namespace) -> int:
    """Tokens and anomalies per model, without generating."""
    from playground.backends.pool import ModelPool
    from playground.engine import Engine
    from playground.requests import ColumnRequest, RequestError, RunRequest

    settings = settings_from_args(args)
    catalog = catalog_with(settings, args.model)
    text = sys.stdin.read() if args.text == "-" else args.text
    params = params_from_flags(args, check=False)  # only --max-new-tokens: the context-window check
    request = RunRequest(prompt=text, system_prompt=args.system or "",
                         columns=[ColumnRequest(m, params) for m in args.model],
                         specials_as_text=args.specials_as_text)
    engine = Engine(catalog, ModelPool(settings.data_dir, settings.device))
    try:
        run = engine.tokenize(request)
    except RequestError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print(json.dumps([_token_report(run, m) for m in run.models], indent=2, ensure_ascii=False))
    else:
        for m in run.models:
            _print_report(m, _token_report(run, m), args.show_tokens)
    return 0 if all(not m.error for m in run.models) else 1


def _print_report(m: ModelRun, report: dict[str, Any], show_tokens: bool) -> None:
    print(f"=== [{m.column}] {m.identity.catalog_id}: {report['prompt_tokens']} prompt tokens "
          f"({report['prompt_format']}), your text {report['user_text_tokens']} tokens, "
          f"{report['chars_per_token']:.2f} chars/token, window {report['context_window']}")
    if m.error:
        print(f"error: {m.error}")
    for a in report["anomalies"]:
        print(f"{a['severity']}: {a['kind']} (token {a['position']}): {a['message']}")
    if show_tokens:
        print(" ".join(f"{p.token_id}:{p.raw}" for p in m.prompt_pieces))


def _token_report(run: Run, model: ModelRun) -> dict[str, Any]:
    """One model's tokens, counts and anomalies (what --json prints)."""
    chars = len(run.prompt)
    return {
        "model": model.identity.catalog_id,
        "prompt_format": model.identity.prompt_format,
        "context_window": model.identity.context_window,
        "prompt_tokens": len(model.prompt_token_ids),
        "user_text_tokens": model.user_text_tokens,
        "characters": chars,
        "chars_per_token": chars / model.user_text_tokens if model.user_text_tokens else 0.0,
        "anomalies": [a.__dict__ for a in model.anomalies],
        "error": model.error,
        "tokens": [p.__dict__ for p in model.prompt_pieces],
    }
