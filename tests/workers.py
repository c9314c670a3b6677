"""Real Celery worker processes and a private Redis for the full-profile tests (tests/test_worker.py,
tests/hardening/test_faults.py). Workers run against the test database and the index prefix
WORKER_PREFIX; the test process sends them tasks through the broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
from celery import current_app
from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]
WORKER_PREFIX = "kp-test-worker"


def app_role_credentials() -> tuple[str, str] | None:
    """(user, password) of the application's PostgreSQL role, from DATABASE_APP_URL (bin/services
    writes it), or None without one."""
    url = os.environ.get("DATABASE_APP_URL", "")
    if not url:
        return None
    parts = urlsplit(url)
    return unquote(parts.username or ""), unquote(parts.password or "")


def wait_for(predicate, timeout=30.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@pytest.fixture
def worker_index(settings):
    """The index the workers write (WORKER_PREFIX), empty, as this test's search backend."""
    settings.SEARCH = {
        **settings.SEARCH,
        "ELASTICSEARCH": {**settings.SEARCH["ELASTICSEARCH"], "INDEX_PREFIX": WORKER_PREFIX},
    }
    from apps.search.backends import get_search_backend, reset_search_backends

    reset_search_backends()
    backend = get_search_backend()
    backend.rebuild([])  # start empty
    yield backend
    reset_search_backends()


class Worker:
    """`celery worker -P solo` on a queue of its own; `kill()` is SIGKILL (no clean shutdown)."""

    def __init__(self, queue: str, broker_url: str | None = None):
        self.queue = queue
        self.broker_url = broker_url or settings.CELERY_BROKER_URL
        db = settings.DATABASES["default"]
        user, password = app_role_credentials() or (db["USER"], db["PASSWORD"])
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT}:{ROOT / 'platform'}",
            "DJANGO_SETTINGS_MODULE": "knowledge_platform.settings.test",
            # As the application's role when there is one (bin/services): the worker does the
            # platform's real work with exactly what migrate grants it (docs/audit.md).
            "DATABASE_URL": (
                f"postgres://{quote(user, safe='')}:{quote(password, safe='')}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
            ),
            "CELERY_BROKER_URL": self.broker_url,
            "ELASTICSEARCH_INDEX_PREFIX": WORKER_PREFIX,
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),  # the uploads the worker ingests
            "CELERY_TASK_DEFAULT_QUEUE": queue,  # tasks the worker queues itself come back to it
            "ELASTICSEARCH_REQUEST_TIMEOUT": "2",  # a stalled engine is noticed in seconds (fault tests)
        }
        self.log = tempfile.NamedTemporaryFile("w", prefix=f"test-worker-{queue}-", suffix=".log", delete=False)  # noqa: SIM115 (a child process's log: it outlives this block)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "knowledge_platform",
                "worker",
                "-P",
                "solo",
                "-Q",
                queue,
                "-n",
                f"{queue}@%h",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not current_app.control.ping(timeout=1.0, destination=[f"{self.queue}@{os.uname().nodename}"]):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Celery worker did not start (exit code {self.process.poll()}); log: {self.log.name}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()  # kept on disk (its path is in failure messages) for a post-mortem


@contextmanager
def task_queue(queue: str, broker_url: str | None = None):
    """Tasks sent by this process go to `queue` (and to `broker_url`, when given)."""
    conf = current_app.conf
    saved = conf.task_default_queue, conf.broker_url, conf.broker_write_url
    conf.task_default_queue = queue
    if broker_url:
        _switch_broker(broker_url, broker_url)
    try:
        yield
    finally:
        conf.task_default_queue = saved[0]
        if broker_url:
            _switch_broker(saved[1], saved[2])


def _switch_broker(url: str, write_url: str | None) -> None:
    # Celery caches connection and producer pools (per app, and in kombu's global registry keyed
    # by broker): drop them all so the next send (and control.ping) connects to the new broker.
    from kombu import pools

    current_app.conf.broker_url, current_app.conf.broker_write_url = url, write_url
    if current_app._pool is not None:
        current_app._pool.force_close_all()
        current_app._pool = None
    current_app.amqp._producer_pool = None
    pools.reset()


class PrivateRedis:
    """A Redis server of the test's own (so stopping it disturbs nothing else), with an append-only
    file: what was queued before a stop is there after the restart, as on a real deployment."""

    def __init__(self, port: int, directory: Path):
        self.port, self.directory = port, directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        if not wait_for(self.ping, timeout=15):
            pytest.fail(f"the private Redis on port {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)

    def ping(self) -> bool:
        import redis

        try:
            return redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
        except redis.exceptions.RedisError:
            return False
