"""The audit checkpoint sink on S3 (AUDIT_CHECKPOINT_STORAGE=s3): django-storages' S3Storage,
configured as settings/base.py configures it, against a real S3-compatible HTTP server on
loopback (moto's server, `moto[server]` in the dev dependencies).

The server runs as a separate process: this test process never imports moto, so nothing of boto3
is patched or stubbed here; every call goes over HTTP to 127.0.0.1, as it would to a bucket.
It runs on both profiles. A server that cannot start fails the tests (never a skip)."""

from __future__ import annotations

import json
import os
import re
import runpy
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.files.storage import storages
from django.core.management import CommandError, call_command

from apps.audit import chain
from apps.audit.checkpoints import STORAGE, checkpoint_write, checkpoints_read
from apps.audit.models import ChainHead
from tests.audit.test_tamper import _cut_after

REGION = "us-east-1"
ACCESS_KEY = "test-access-key"  # moto accepts any credentials; these only need to be there
SECRET_KEY = "test-secret-key"
LOCATION = "audit-checkpoints"  # settings/base.py's default AUDIT_CHECKPOINT_PREFIX
BASE_SETTINGS = Path(__file__).resolve().parents[2] / "platform" / "knowledge_platform" / "settings" / "base.py"
STARTUP_SECONDS = 60  # the server imports all of moto: give a loaded 2-core machine time


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/moto-api/", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP answer of any status: the server is up
    except OSError:
        return False


@pytest.fixture(scope="module")
def s3_server():
    """An S3-compatible server on 127.0.0.1 at a free port, for this module; stopped after it."""
    try:
        import moto  # noqa: F401  (only to say what is missing: the server runs in its own process)
    except ImportError:
        pytest.fail("moto[server] is not installed: it is in pyproject.toml's dev dependencies (bash bin/venv)")
    log = tempfile.NamedTemporaryFile(prefix="kp-moto-", suffix=".log", delete=False)  # noqa: SIM115 (a child process's log: it outlives this block)
    process = url = None
    for _attempt in range(3):  # the free port can be taken between probing and binding it
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while process.poll() is None and time.monotonic() < deadline and not _answers(url):
            time.sleep(0.2)
        if process.poll() is None and _answers(url):
            break
        if process.poll() is None:
            process.kill()
        process.wait()
        process = None
    if process is None:
        log.flush()
        tail = Path(log.name).read_text(errors="replace")[-2000:]
        pytest.fail(
            f"the S3-compatible test server (python -m moto.server) did not start on 127.0.0.1; "
            f"its output ({log.name}):\n{tail}"
        )
    yield url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()
    os.unlink(log.name)


def _options(endpoint_url: str, bucket: str) -> dict:
    """The OPTIONS settings/base.py builds for AUDIT_CHECKPOINT_STORAGE=s3."""
    return {
        "bucket_name": bucket,
        "location": LOCATION,
        "endpoint_url": endpoint_url,
        "region_name": REGION,
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "default_acl": None,
        "file_overwrite": False,
    }


@dataclass
class Bucket:
    """The test's own view of the bucket: a boto3 client of its own, over HTTP like the sink."""

    client: object
    name: str

    def keys(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.name)
        return sorted(entry["Key"] for entry in listed.get("Contents", ()))

    def body(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh bucket for each test (tenant ids are reused across tests)."""
    import boto3

    client = boto3.client(
        "s3", endpoint_url=s3_server, region_name=REGION, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY
    )
    name = f"kp-audit-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return Bucket(client, name)


@pytest.fixture
def s3_sink(settings, _fresh_audit_checkpoints, s3_server, s3_bucket):
    """The `audit_checkpoints` storage on S3, replacing the directory tests/conftest.py gives every test."""
    from storages.backends.s3 import S3Storage

    settings.STORAGES = {
        **settings.STORAGES,
        STORAGE: {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": _options(s3_server, s3_bucket.name)},
    }
    assert isinstance(storages[STORAGE], S3Storage)
    return s3_bucket


NAME = re.compile(r"(?P<tenant>\d+)/(?P<sequence>\d{12})-\d{8}T\d{12}(_[A-Za-z0-9]{7})?\.json")


@pytest.mark.django_db
def test_a_checkpoint_is_written_to_the_bucket_read_back_and_verified(library, records, s3_sink):
    tenant = library.world.tenant
    report = checkpoint_write(tenant=tenant)
    assert report.sequence == 4 and not report.refused
    assert s3_sink.keys() == [f"{LOCATION}/{report.name}"]
    match = NAME.fullmatch(report.name)
    assert match and int(match["tenant"]) == tenant.pk and match["sequence"] == "000000000004", report.name
    document = json.loads(s3_sink.body(f"{LOCATION}/{report.name}"))
    head = ChainHead.objects.get(tenant=tenant)
    assert (document["tenant_id"], document["sequence"], document["hash"]) == (tenant.pk, 4, head.last_hash)
    assert document["signature"]

    read = checkpoints_read(tenant)
    assert [(c.name, c.sequence, c.hash, c.key_id, c.valid) for c in read] == [
        (report.name, 4, head.last_hash, "test", True)
    ]
    verified = chain.verify_tenant(tenant)
    assert verified.intact and (verified.records, verified.checkpoints) == (4, 1)
    assert checkpoint_write(tenant=tenant).sequence is None  # nothing moved: the checkpoint in the bucket says so


@pytest.mark.django_db
def test_forced_checkpoints_get_objects_of_their_own_and_never_overwrite(library, records, s3_sink):
    """Both at the same instant: the second wants the first's name, and S3Storage (file_overwrite
    False) must find the name taken over HTTP and choose another."""
    from django.utils import timezone

    tenant = library.world.tenant
    now = timezone.now()
    first = checkpoint_write(tenant=tenant, force=True, now=now)
    first_key = f"{LOCATION}/{first.name}"
    before = s3_sink.body(first_key)
    second = checkpoint_write(tenant=tenant, force=True, now=now)
    assert first.sequence == second.sequence == 4
    assert second.name != first.name and NAME.fullmatch(second.name), second.name
    assert s3_sink.keys() == sorted([first_key, f"{LOCATION}/{second.name}"])
    assert s3_sink.body(first_key) == before
    assert json.loads(s3_sink.body(f"{LOCATION}/{second.name}"))["sequence"] == 4
    assert [c.valid for c in checkpoints_read(tenant)] == [True, True]
    verified = chain.verify_tenant(tenant)
    assert verified.intact and verified.checkpoints == 2


@pytest.mark.django_db
@pytest.mark.parametrize("sink", ["directory", "s3"])
def test_a_truncation_is_caught_through_either_sink(library, records, sink, request):
    """The same attack as test_tamper's truncation test, and the same verdict, whichever the sink."""
    if sink == "s3":
        bucket = request.getfixturevalue("s3_sink")
    tenant = library.world.tenant
    assert checkpoint_write(tenant=tenant).sequence == 4
    _cut_after(tenant, 2)
    report = chain.verify_tenant(tenant)
    assert not report.intact and report.checkpoints == 1
    assert report.first_break.sequence == 3 and "cut off" in report.first_break.problem
    with pytest.raises(CommandError):
        call_command("audit_verify", "--tenant", tenant.slug)
    refused = checkpoint_write(tenant=tenant, force=True)  # nor is the rewound head signed
    assert refused.sequence is None and refused.refused
    assert [c.sequence for c in checkpoints_read(tenant)] == [4]
    if sink == "s3":
        assert len(bucket.keys()) == 1


@pytest.mark.django_db
def test_the_settings_s3_branch_builds_this_sink(
    library, records, settings, _fresh_audit_checkpoints, s3_server, s3_bucket, monkeypatch
):
    """settings/base.py itself, run with AUDIT_CHECKPOINT_STORAGE=s3: the storage it configures
    is the one tested above, and it works."""
    for name, value in {
        "AUDIT_CHECKPOINT_STORAGE": "s3",
        "AUDIT_CHECKPOINT_BUCKET": s3_bucket.name,
        "AWS_S3_ENDPOINT_URL": s3_server,
        "AWS_S3_REGION_NAME": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AUDIT_CHECKPOINT_PREFIX", raising=False)
    built = runpy.run_path(str(BASE_SETTINGS))["STORAGES"][STORAGE]
    assert built == {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": _options(s3_server, s3_bucket.name)}
    settings.STORAGES = {**settings.STORAGES, STORAGE: built}
    tenant = library.world.tenant
    report = checkpoint_write(tenant=tenant)
    assert s3_bucket.keys() == [f"{LOCATION}/{report.name}"]
    assert chain.verify_tenant(tenant).checkpoints == 1
