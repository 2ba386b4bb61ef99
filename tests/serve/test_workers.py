"""Several `zenrec serve --reuse-port` processes share one port and one store: any of them answers, an event
posted through the port reaches every worker's lists, and a port held without the flag is a clear error."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from tests.serve.conftest import free_port
from zenrec.cli.main import app


def _start(model, port: int, store, log) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "zenrec.cli", "serve", str(model), "--port", str(port), "--reuse-port",
           "--store", f"sqlite:///{store}", "--sync-seconds", "0.05"]
    env = {k: v for k, v in os.environ.items() if k != "ZENREC_API_KEY"} | {"OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_two_workers_on_one_port_serve_and_follow_each_other(model_dirs, tmp_path):
    port, store = free_port(), tmp_path / "events.db"
    logs = [open(tmp_path / f"w{i}.log", "w+") for i in range(2)]  # noqa: SIM115 - closed below
    procs = []
    try:
        for log in logs:  # one after the other: the second joins the port the first listens on
            procs.append(_start(model_dirs("ease"), port, store, log))
            deadline = time.monotonic() + 90
            while "Application startup complete" not in (tmp_path / f"w{len(procs) - 1}.log").read_text():
                assert procs[-1].poll() is None, (tmp_path / f"w{len(procs) - 1}.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "a worker did not start"
                time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=5) as c:
            top = c.get(f"{base}/users/196/recommendations", params={"k": 1}).json()["items"][0]["item"]
            assert c.post(f"{base}/events", json={"user": 196, "item": top}).status_code == 200
        time.sleep(0.6)  # every worker follows the store (--sync-seconds 0.05)
        for _ in range(20):  # a new connection each time: the kernel spreads them over both workers
            r = httpx.get(f"{base}/users/196/recommendations", params={"k": 5}, timeout=5)
            assert r.status_code == 200 and top not in [i["item"] for i in r.json()["items"]]
        procs[0].terminate()
        procs[0].wait(15)
        for _ in range(10):  # the other worker keeps answering on the port
            assert httpx.get(f"{base}/users/196/recommendations", params={"k": 5}, timeout=5).status_code == 200
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(15)
        for log in logs:
            log.close()


def test_reuse_port_on_a_port_held_without_it_is_a_clear_error(model_dirs, tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = CliRunner().invoke(app, ["serve", str(model_dirs("ease")), "--port", str(port), "--reuse-port",
                                     "--store", f"sqlite:///{tmp_path / 'e.db'}"])
    assert r.exit_code == 2 and "--reuse-port: cannot bind" in r.output and "Traceback" not in r.output
