"""Real server processes the tests start: a free loopback port, and a local Prefect server."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen | None, timeout: float = 30) -> None:
    """Terminate a process, kill it if it does not exit in ``timeout`` seconds, and reap it."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def prefect_server(env: dict, attempts: int = 240) -> Iterator[str]:
    """``prefect server start`` on a free port; yields its API URL once healthy, stops it after."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(attempts):
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, "prefect server exited"
            time.sleep(0.5)
        else:
            raise RuntimeError("prefect server did not start")
        yield api
    finally:
        stop(server)
