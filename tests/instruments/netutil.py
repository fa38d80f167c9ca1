"""Start and stop microscope server processes for the network tests (loopback only)."""

from __future__ import annotations

import functools
import os
import pathlib
import select
import signal
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = pathlib.Path(__file__).resolve().parent
START_TIMEOUT = 120.0  # seconds for a server process to import jax, build its twin and listen
# every campaign of these tests: one twin, one configuration, one capacity (num_init +
# NUM_STEPS), so the runner's programs compile once per process; shorter campaigns stop early
TWIN = {"size": 20, "window": 2}
NUM_INIT, NUM_STEPS = 5, 200


@functools.cache
def pfm_twin():
    """The PFM twin every server and campaign of these tests uses (361 candidates)."""
    import jax

    from jaxscope.instruments import PFMTwin

    return PFMTwin.create(jax.random.key(0), **TWIN)


@functools.cache
def pfm_config():
    from jaxscope.campaign import make_config

    return make_config(pfm_twin().candidates, acquisition="ucb", mode="fixed")


def serve_cmd(*args: str) -> list[str]:
    """``jaxscope serve ARGS`` as a command line for this interpreter."""
    code = "import sys; from jaxscope.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, "serve", *args]


def fault_server_cmd(*args: str) -> list[str]:
    return [sys.executable, str(HERE / "fault_server.py"), *args]


class Server:
    """A server process: started, killed (SIGKILL) and restarted on the same port."""

    def __init__(self, cmd: list[str], log: pathlib.Path):
        self.cmd, self.log, self.proc, self.port = cmd, log, None, None

    def launch(self, port: int = 0) -> Server:
        """Start the process; :meth:`wait_ready` waits for it to listen."""
        cmd = [*self.cmd]
        cmd[cmd.index("--port") + 1] = str(port)
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", JAX_PLATFORMS="cpu")
        with open(self.log, "a") as err:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT, env=env
            )
        return self

    def start(self, port: int = 0) -> Server:
        return self.launch(port).wait_ready()

    def wait_ready(self) -> Server:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            if not ready:
                self.kill()
                raise TimeoutError(f"server did not start in {START_TIMEOUT} s: {self.log}")
            line = self.proc.stdout.readline()
            if not line:
                self.kill()
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            if line.startswith("serving PYRO:"):
                self.port = int(line.strip().rsplit(":", 1)[1])
                return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)
            self.proc.stdout.close()

    def restart(self) -> Server:
        self.kill()
        return self.start(self.port)
