"""Scheduled builds: serve ``build_dataset`` as a deployment with a cron schedule."""

from __future__ import annotations

from pathlib import Path

from flows.build import build_dataset
from flows.config import load_build_config


def serve(config: str | Path, cron: str, name: str = "scheduled") -> None:
    """Register the deployment ``build-dataset/<name>`` with ``cron`` and run it on schedule (blocks).

    Points at whatever Prefect API is configured: ``PREFECT_API_URL=http://host:4200/api`` for an
    existing server, or a temporary local one.
    """
    cfg = load_build_config(config)
    build_dataset.serve(name=name, cron=cron, parameters={"cfg": cfg.model_dump(mode="json")})


if __name__ == "__main__":
    import sys

    serve(sys.argv[1], sys.argv[2], *(sys.argv[3:4]))
