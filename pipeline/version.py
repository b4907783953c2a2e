"""The installed lengthwise version."""

from importlib import metadata


def version() -> str:
    """Installed lengthwise version (``0+unknown`` when run from a bare checkout)."""
    try:
        return metadata.version("lengthwise")
    except metadata.PackageNotFoundError:
        return "0+unknown"
