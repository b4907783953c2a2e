"""``python -m trainer CONFIG.yaml``; also under ``torchrun`` or ``accelerate launch`` (see docs/parallel.md)."""

from __future__ import annotations

import json
import sys

from trainer.config import load_config
from trainer.recipe import train


def main(argv: list[str] | None = None) -> None:
    """Train from a YAML config."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        sys.exit("usage: python -m trainer CONFIG.yaml")
    summary = train(load_config(args[0]))
    if summary:
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
