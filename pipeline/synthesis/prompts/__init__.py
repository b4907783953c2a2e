"""Versioned prompt templates, shipped as package data.

The version stored with every record is ``<folder>-<hash of the templates>``: editing a template
changes the version (and so the cache keys) without anyone having to remember to bump it.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import jinja2

PROMPTS_DIR = Path(__file__).parent
DEFAULT_VERSION = "v1"


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PROMPTS_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


@cache
def prompt_version(version: str = DEFAULT_VERSION) -> str:
    """Version tag with a short hash of every template in the version folder."""
    folder = PROMPTS_DIR / version
    if not folder.is_dir():
        raise FileNotFoundError(f"no prompt version {version!r} in {PROMPTS_DIR}")
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.jinja")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"{version}-{h.hexdigest()[:8]}"


def render(name: str, version: str = DEFAULT_VERSION, **values: object) -> str:
    """Render template ``name`` (e.g. ``general``) of ``version``."""
    return _env().get_template(f"{version}/{name}.jinja").render(**values).strip()
