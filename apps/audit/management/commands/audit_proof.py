"""An inclusion proof of one audit record in a signed checkpoint, or the check of one.

    python manage.py audit_proof RECORD_ID --tenant SLUG > proof.json
    python manage.py audit_proof --check proof.json [--public-key KEY_ID:BASE64 ...]

The check needs no database and no secret: only public keys (`audit_keys` prints them; without
--public-key, this platform's own ring is used). Exit status 1 when a proof does not hold."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.audit import keys
from apps.audit.proofs import proof_build, proof_check
from apps.audit.selectors import record_get
from apps.core.exceptions import ApplicationError
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = "Print an inclusion proof of an audit record, or check one with the public keys."

    def add_arguments(self, parser):
        parser.add_argument("record_id", type=int, nargs="?")
        parser.add_argument("--tenant", help="The record's tenant (slug).")
        parser.add_argument("--check", metavar="FILE", help="Check this proof instead of building one.")
        parser.add_argument(
            "--public-key",
            action="append",
            default=[],
            metavar="KEY_ID:BASE64",
            help="A public key to check with (repeatable); default: this platform's ring.",
        )

    def handle(self, *args, record_id=None, tenant=None, check=None, public_key=(), **options):
        if check:
            if any(":" not in item for item in public_key):
                raise CommandError("--public-key takes KEY_ID:BASE64 (as `audit_keys` prints it, without 'ed25519:').")
            public = dict(item.split(":", 1) for item in public_key) or {
                k.key_id: k.public_key_b64() for k in keys.ring()
            }
            try:
                proof = json.loads(Path(check).read_text())
                valid, why = proof_check(proof, public)
            except (OSError, ValueError, RecursionError) as exc:
                raise CommandError(f"{check} is not a readable proof: {exc}") from exc
            self.stdout.write(("VALID: " if valid else "INVALID: ") + why)
            if not valid:
                raise CommandError("The proof does not hold.", returncode=1)
            return
        if record_id is None or not tenant:
            raise CommandError("Give RECORD_ID and --tenant, or --check FILE.")
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant '{tenant}'.")
        try:
            proof = proof_build(record=record_get(tenant=found, record_id=record_id))
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps(proof, indent=1, ensure_ascii=False))
