"""`python -m playground ...`: the command line lives in playground/cli/ (one module per command group).

Exit status: 0 on success, 2 on bad input (with a message on stderr), 1 when
every model of a `compare` failed.
"""

from __future__ import annotations

from playground.cli import CliError, build_parser, exit_now, main, terminal_safe

__all__ = ["CliError", "build_parser", "main", "terminal_safe"]

if __name__ == "__main__":
    exit_now(main())
