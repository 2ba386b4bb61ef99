"""What every ``zenrec`` command shares: the consoles and the error handling of a command."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from zenrec.errors import ZenrecError

__all__ = ["out", "err", "EXIT_USAGE", "fail", "commands"]

out = Console()
if not out.is_terminal:  # piped or in CI: tables keep their columns
    out = Console(width=140)
err = Console(stderr=True)

EXIT_USAGE = 2


def fail(message: str) -> typer.Exit:
    """Print a one-line error and return the exit (code 2) to raise."""
    err.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USAGE)


def commands(app: typer.Typer) -> Callable[..., Any]:
    """A decorator registering commands on ``app`` whose zenrec errors become one line and exit code 2.

    Use it bare (``@command``) or with a name (``@command(name="list")``).
    """

    def command(fn: Callable | None = None, *, name: str | None = None) -> Any:
        if fn is None:
            return functools.partial(command, name=name)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except ZenrecError as exc:
                raise fail(str(exc)) from None
            except KeyboardInterrupt:
                err.print("interrupted")
                raise typer.Exit(130) from None

        return app.command(name)(wrapper)

    return command
