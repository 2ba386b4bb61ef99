"""The ``zenrec`` command line: thin commands that call the library.

:mod:`~zenrec.cli.main` holds the app and the top-level commands,
:mod:`~zenrec.cli.registry` and :mod:`~zenrec.cli.report` the ``registry`` and
``report`` groups, :mod:`~zenrec.cli.common` the console and the error mapping.
"""

from zenrec.cli.main import app, main

__all__ = ["app", "main"]
