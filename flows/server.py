"""The Prefect API a command talks to: an existing server, or a private one that dies with us.

Prefect's own temporary server is a plain child process: a SIGKILLed build leaves it running and
listening. The server started here asks the kernel (Linux ``PR_SET_PDEATHSIG``) to stop it when
its parent dies, and is stopped on every normal exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

log = logging.getLogger(__name__)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: atexit still stops it on a normal exit
        pass


def _owned_server_class():
    from prefect.server.api.server import SubprocessASGIServer

    class OwnedServer(SubprocessASGIServer):
        """Prefect's temporary server, started so that it cannot outlive this process."""

        def _run_uvicorn_command(self) -> subprocess.Popen:
            import prefect
            from prefect.settings import get_current_settings

            env = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
            return subprocess.Popen(  # the command Prefect itself uses, plus the parent-death signal
                [
                    sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent),
                    "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
                    "--port", str(self.port), "--log-level", "error", "--lifespan", "on",
                ],  # fmt: skip
                env={**os.environ, **env, **get_current_settings().to_environment_variables(exclude_unset=True)},
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
            )

    return OwnedServer


def _drain_to(server) -> None:
    """Send the queued run logs and events while the private server still listens.

    Left queued, Prefect's exit handler retries them against the closed port: every command
    took over a minute longer to exit, printing "Error logging to API".
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=10)
        except Exception as e:  # noqa: BLE001  (a failed drain must not hide the command's result)
            log.debug("draining %s before stopping %s failed: %s", worker.__name__, server.api_url, e)


@contextlib.contextmanager
def prefect_api() -> Iterator[str]:
    """Use ``PREFECT_API_URL`` when set; otherwise run a private temporary server for this block."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    url = get_current_settings().api.url
    if url:
        yield url
        return
    server = _owned_server_class()()
    server.start()
    log.info("temporary Prefect server at %s (pid %d)", server.api_url, server.server_process.pid)
    old = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url  # for worker processes (Dask, Ray)
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        if old is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = old
        _drain_to(server)
        server.stop()
