"""A ``zenrec serve`` child process on loopback, for tests and benchmarks that need a real server.

    server = ServeProcess("models/ease", "sqlite:///events.db", Path("serve.log"), "--no-served-log")
    health = server.wait_healthy()
    ...
    server.stop()
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["ServeProcess", "free_port"]


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """``zenrec serve SOURCE --port P [--store URL] [ARGS…]`` as a child process (the Python server itself, no shell),
    its output in the file ``log``; :meth:`wait_healthy` waits for ``/healthz``, :meth:`stop` ends it."""

    def __init__(self, source: Path | str, store_url: str | None, log: Path, *args: str,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        base = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        for name in ("ZENREC_API_KEY", "ZENREC_ERASURE_KEY"):
            base.pop(name, None)
        cmd = [sys.executable, "-m", "zenrec.cli", "serve", str(source), "--port", str(self.port),
               *(("--store", store_url) if store_url is not None else ()), *args]
        with open(log, "ab") as out:  # a file, not a pipe: the log must never block the server
            self.proc = subprocess.Popen(cmd, env={**base, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=cwd)

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def wait_healthy(self, timeout: float = 90.0) -> dict:
        """The first ``/healthz`` body that answers 200 (an AssertionError with the log when the server exits
        or does not answer in time)."""
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            try:
                r = httpx.get(f"{self.url}/healthz", timeout=2)
                if r.status_code == 200:
                    return r.json()
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"zenrec serve exited with {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"zenrec serve not healthy after {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), SIGKILL when it does not exit in time; safe to call twice."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
