"""A real Dask cluster on 127.0.0.1: a ``dask scheduler`` and ``dask worker`` processes.

Used by the fleet benchmark (``bench/fleet.py``) and the cluster tests
(``tests/test_dask.py``), so that both start, wait for and stop a cluster the same way::

    with DaskProcesses(tmp, workers=2) as cluster:
        run(["pcapcheck", "analyze", ..., "--scheduler", cluster.address])

Each process is ``python -m dask scheduler|worker`` (the ``dask`` command of the running
interpreter), with its standard output and error in ``tmp/<name>.log``: ``scheduler``,
``worker1``, ``worker2``, ... The scheduler listens on a free port of 127.0.0.1 (``--port
0``), read back from its ``--scheduler-file``; no dashboard. Workers have one thread each.

Errors: :class:`ClusterError` (one line, with the end of the process's log) when the
scheduler does not write its address, or the workers do not join, within ``timeout``
seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


class ClusterError(RuntimeError):
    """The scheduler or a worker did not start (the message ends with its log)."""


class DaskProcesses:
    """``workers`` ``dask worker`` processes and their ``dask scheduler`` on 127.0.0.1.

    ``nanny``: start each worker under a nanny (Dask's default); False gives
    ``--no-nanny``, so that a worker's pid is the process that runs the tasks (what a
    test kills). ``env``: the processes' environment (None: this process's), e.g. with
    :func:`pcapcheck.run.cluster.worker_environment` for the configuration the README
    recommends. ``timeout``: seconds to wait for the scheduler and for the workers.

    :meth:`start` (or ``with``) starts the scheduler and the workers and waits until the
    scheduler has them all; :meth:`stop` (or the end of the ``with``) stops the workers,
    then the scheduler: SIGTERM, SIGKILL after 5 s."""

    def __init__(
        self,
        tmp: Path,
        workers: int = 2,
        *,
        nanny: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ):
        self.tmp = tmp
        self.workers = workers
        self.nanny = nanny
        self.env = env
        self.timeout = timeout
        #: process name ("scheduler", "worker1", ...) -> its process
        self.procs: dict[str, subprocess.Popen] = {}
        #: the scheduler's address, ``tcp://127.0.0.1:PORT`` once started
        self.address = ""
        self.count = 0

    def __enter__(self) -> DaskProcesses:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.tmp / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dask", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.tmp,
                env=self.env,
            )
        self.procs[name] = proc
        return proc

    def start(self) -> None:
        """Start the scheduler, then :attr:`workers` workers (:class:`ClusterError`)."""
        info = self.tmp / "scheduler.json"
        scheduler = self._start(
            "scheduler",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(info),
        )
        deadline = time.monotonic() + self.timeout
        while not self.address:
            if scheduler.poll() is not None or time.monotonic() > deadline:
                raise ClusterError(f"the dask scheduler did not start: {self.log('scheduler')}")
            try:
                self.address = json.loads(info.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        self.add_workers(self.workers)

    def add_workers(self, n: int) -> None:
        """Start ``n`` more workers and wait until the scheduler has every live one."""
        for _ in range(n):
            self.count += 1
            name = f"worker{self.count}"
            self._start(
                name,
                "worker",
                self.address,
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                *(() if self.nanny else ("--no-nanny",)),
                "--no-dashboard",
                "--name",
                name,
                "--local-directory",
                str(self.tmp),
            )
        try:
            with self.client() as client:
                client.wait_for_workers(len(self.alive()), timeout=self.timeout)
        except TimeoutError as exc:
            raise ClusterError(f"the dask workers did not join: {exc}") from None

    def alive(self) -> list[str]:
        """The names of the workers still running."""
        return [n for n, p in self.procs.items() if n.startswith("worker") and p.poll() is None]

    def pids(self) -> list[int]:
        """The process ids of the scheduler and the workers."""
        return [proc.pid for proc in self.procs.values()]

    def client(self) -> Any:
        """A ``distributed.Client`` of this cluster (not the default client)."""
        from distributed import Client

        return Client(self.address, timeout=self.timeout, set_as_default=False)

    def log(self, name: str) -> str:
        """The last 3,000 characters of the log of process ``name``."""
        try:
            return (self.tmp / f"{name}.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """The workers first, then the scheduler: SIGTERM, SIGKILL after 5 s."""
        procs = sorted(self.procs.items(), key=lambda item: item[0] == "scheduler")
        for _name, proc in procs:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
