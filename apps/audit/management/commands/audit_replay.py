"""Replay one audit record: rebuild its retrieved, given and cited texts from the immutable
versions, check every hash it kept, and say what would differ if the same query ran now.

    python manage.py audit_replay RECORD_ID --tenant SLUG [--json]

Exit status 1 when a hash does not match (the record, or a text re-derived from a version)."""

import json
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError

from apps.audit.replay import record_replay
from apps.audit.selectors import record_get
from apps.core.exceptions import NotFound
from apps.tenants.models import Tenant


def _mark(value) -> str:
    return {True: "matches", False: "DIFFERS", None: "unavailable"}[value]


class Command(BaseCommand):
    help = "Rebuild one audit record from the versions, check its hashes, and say what differs now."

    def add_arguments(self, parser):
        parser.add_argument("record_id", type=int)
        parser.add_argument("--tenant", required=True, help="The record's tenant (slug).")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the whole replay as JSON.")

    def handle(self, *args, record_id: int, tenant: str, as_json: bool = False, **options):
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant '{tenant}'.")
        try:
            record = record_get(tenant=found, record_id=record_id)
        except NotFound as exc:
            raise CommandError(exc.message) from exc
        replay = record_replay(record=record)
        if as_json:
            self.stdout.write(_json_dumps({**asdict(replay), "hashes_match": replay.hashes_match}))
        else:
            self.stdout.write(
                f"{tenant}#{record.sequence} ({record.kind}, {record.created_at:%Y-%m-%d %H:%M}): "
                f"record {'intact' if replay.record_intact else 'ALTERED'}, "
                f"texts {'all match' if replay.hashes_match else 'DO NOT all match'}"
            )
            for chunk in replay.chunks:
                now = "; ".join(chunk.now) or "the same now"
                self.stdout.write(
                    f"  chunk {chunk.rank} {chunk.chunk_id} v{chunk.version_id}: database {_mark(chunk.text_matches)}, "
                    f"served {_mark(chunk.served_matches)} — {now}"
                )
            for passage in replay.context:
                self.stdout.write(f"  context [{passage.number}] v{passage.version_id}: {_mark(passage.text_matches)}")
            for citation in replay.citations:
                self.stdout.write(f"  citation [{citation.marker}]: {_mark(citation.quote_matches)}")
            for note in replay.now:
                self.stdout.write(f"  since then: {note}")
            for problem in replay.unverifiable:
                self.stdout.write(f"  CANNOT CHECK: {problem}")
        if not replay.hashes_match:
            raise CommandError("The record does not match what it kept.", returncode=1)


def _json_dumps(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
