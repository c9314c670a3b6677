"""The audit benchmark runs end to end (a few records) and leaves nothing behind: its records are
rolled back, and its checkpoint never reaches the real sink."""

from pathlib import Path

import pytest
from django.core.management import call_command

from apps.audit.models import AuditRecord
from apps.tenants.models import Tenant


@pytest.mark.django_db
def test_the_audit_benchmark_prints_its_figures_and_leaves_nothing(tmp_path, capsys, settings):
    call_command("audit_benchmark", "--records", "40", "--output", str(tmp_path / "audit.md"))
    out = capsys.readouterr().out
    assert "| ratio |" in out and "entries/s" in out and "inclusion proof of one record" in out
    assert (tmp_path / "audit.md").read_text() == out
    assert (
        not AuditRecord.objects.across_tenants().exists()
        and not Tenant.objects.filter(slug__startswith="bench-").exists()
    )
    sink = settings.STORAGES["audit_checkpoints"]["OPTIONS"]["location"]
    assert not any(Path(sink).rglob("*.json"))
