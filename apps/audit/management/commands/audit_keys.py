"""Print the public half of every audit key (AUDIT_KEYS), for auditors who check checkpoints and
retention anchors outside the platform. The secrets are never printed.

    python manage.py audit_keys"""

from django.core.management.base import BaseCommand

from apps.audit import keys


class Command(BaseCommand):
    help = "Print each audit key's id and Ed25519 public key (base64); the first one signs now."

    def handle(self, *args, **options):
        for position, key in enumerate(keys.ring()):
            role = "current" if position == 0 else "retired (verifies only)"
            self.stdout.write(f"{key.key_id}\ted25519:{key.public_key_b64()}\t{role}")
