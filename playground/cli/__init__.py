"""Command line: serve | compare | tokenize | sessions | batch | catalog | prepare.

Exit status: 0 on success, 2 on bad input (with a message on stderr), 1 when
every model of a `compare` failed.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn

from playground.cli import common as cli_common
from playground.cli import compare, judge, models, sessions, tokenize
from playground.cli.common import CliError, add_common, terminal_safe
from playground.config import SettingsError
from playground.params import ParamsError

__all__ = ["CliError", "build_parser", "exit_now", "main", "terminal_safe"]


def build_parser() -> argparse.ArgumentParser:
    """Every command, one module per command group (their imports wait until a command runs)."""
    from playground.batch.cli import add_parser as add_batch_parser
    from playground.routing.cli import add_route_parser

    parser = argparse.ArgumentParser(prog="python -m playground", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    models.add_serve_parser(sub)
    compare.add_parser(sub)
    tokenize.add_parser(sub)
    sessions.add_parsers(sub)
    add_batch_parser(sub, add_common, cli_common)
    judge.add_parser(sub)
    models.add_model_parsers(sub)
    add_route_parser(sub, add_common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; bad input (CliError, a malformed setting or parameter) is exit status 2."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # a reader that went away (`sessions list | head -1`) shows here at the latest
        return status
    except (CliError, SettingsError, ParamsError) as exc:
        print(f"playground: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """The reader of stdout closed the pipe: nothing more can reach it, and it asked for no more.

    As Python's documentation recommends (signal module, "Note on SIGPIPE"): point stdout at devnull,
    so the interpreter's own flush at exit raises no second BrokenPipeError (a traceback)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def exit_now(status: int) -> NoReturn:
    """End `python -m playground` with `status`, without the interpreter's teardown of every object.

    Once a command has loaded models, freeing torch's, transformers' and the models' objects one by
    one took 1.3 to 1.6 s on the 2-core dev box after everything was printed (bench/bench_cli_start.py),
    longer than the run itself. Nothing in it is needed; what an interpreter's exit does that matters
    is done here first, in its order: other non-daemon threads are waited for, the atexit handlers run
    (logging's flush, temporary folders' removal), and stdout and stderr are flushed."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # the interpreter's own call at exit (CPython's Modules/atexitmodule.c)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):  # a reader gone away, a stream closed
            stream.flush()
    os._exit(status)
