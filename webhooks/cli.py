"""`coalition webhooks pump` and `coalition webhooks worker`: the webhooks' processes with Redis
(decision 243). `coalition worker` starts one pump and `--webhook-workers` workers beside its own
RQ worker and keeps them running (`Children`); an operator scaling out may run either alone on
another machine. Each is a process of its own, so a kill, a crash or a hung endpoint in one
never stops the others, and a child started by `coalition worker` ends when it ends."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

import click
import rq
from flask import Flask, current_app
from flask.cli import with_appcontext

from coalition.extensions import db
from coalition.jobs import redis_connection
from webhooks.tasks import QUEUE, run_pump

log = logging.getLogger(__name__)

# A child whose parent is gone notices within this many seconds.
PARENT_CHECK_SECONDS = 1.0
# A child that keeps dying is started again at most this often.
RESTART_SECONDS = 2.0


def _app() -> Flask:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config["REDIS_URL"]:
        raise click.ClickException(
            "REDIS_URL is not set: without Redis, `coalition serve` delivers the webhooks"
        )
    return app


def _end_with_parent(parent_pid: int | None) -> None:
    """When `parent_pid` (the `coalition worker` that started us) is gone, stop as if told to:
    a SIGTERM to ourselves, which RQ and the pump take as a warm shutdown."""
    if parent_pid is None:
        return

    def watch() -> None:
        while os.getppid() == parent_pid:
            threading.Event().wait(PARENT_CHECK_SECONDS)
        log.warning("webhooks: parent %s gone, stopping", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class WebhookWorker(rq.SimpleWorker):
    """An RQ worker running its jobs in its own process (no fork per job: a delivery job is
    short and keeps the process's database and HTTPS connections), each job's session closed
    after it."""

    def execute_job(self, job: Any, queue: Any) -> Any:
        try:
            return super().execute_job(job, queue)
        finally:
            db.session.remove()


@click.group("webhooks")
def webhooks_group() -> None:
    """Outbound webhooks' processes (with Redis; `coalition worker` starts them)."""


@webhooks_group.command("pump")
@click.option("--parent-pid", type=int, default=None, hidden=True)
@with_appcontext
def pump(parent_pid: int | None) -> None:
    """Fan new events out and hand each endpoint with due deliveries to the `webhooks` queue,
    every half second, until stopped."""
    app = _app()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    _end_with_parent(parent_pid)
    log.info("webhooks pump started")
    run_pump(app, stop)


@webhooks_group.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--parent-pid", type=int, default=None, hidden=True)
@with_appcontext
def worker(burst: bool, parent_pid: int | None) -> None:
    """Run delivery jobs from the `webhooks` queue, one at a time."""
    app = _app()
    _end_with_parent(parent_pid)
    WebhookWorker([QUEUE], connection=redis_connection(app)).work(burst=burst)


class Children:
    """`coalition webhooks pump` and `workers` times `coalition webhooks worker`, started from the
    process environment (where `coalition worker` read its own settings) and started again
    should one end, until `stop`."""

    def __init__(self, workers: int) -> None:
        self.commands = [["pump"]] + [["worker"]] * workers
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * len(self.commands)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="webhooks-children", daemon=True)

    def start(self) -> Children:
        for index in range(len(self.commands)):
            self._start(index)
        self.thread.start()
        return self

    def _start(self, index: int) -> None:
        self.processes[index] = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from coalition.cli import main; main()",
                "webhooks",
                *self.commands[index],
                "--parent-pid",
                str(os.getpid()),
            ]
        )

    def _watch(self) -> None:
        while not self.stopping.wait(RESTART_SECONDS):
            for index, process in enumerate(self.processes):
                if process is not None and process.poll() is not None:
                    log.warning(
                        "webhooks %s ended (%s); starting it again",
                        self.commands[index][0],
                        process.returncode,
                    )
                    self._start(index)

    def stop(self, timeout: float = 20.0) -> None:
        self.stopping.set()
        self.thread.join(timeout=RESTART_SECONDS + 1)
        running = [p for p in self.processes if p is not None and p.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
