"""``python -m zenrec.cli``: the same as the ``zenrec`` command."""

from zenrec.cli.main import main

main()
