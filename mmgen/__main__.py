"""``python -m mmgen`` is the ``mmgen`` command."""

from .cli import main

main()
