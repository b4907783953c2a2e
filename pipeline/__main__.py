"""``python -m pipeline`` runs the ``lengthwise`` CLI."""

from pipeline.cli import main

main()
