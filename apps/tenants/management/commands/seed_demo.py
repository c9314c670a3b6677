"""Load the demo tenants from fixtures/ (idempotent) and issue a fresh demo API key per tenant.

The raw keys are printed, not stored: each run revokes the previous demo keys and prints new ones.
"""

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.tenants import selectors, services
from apps.tenants.models import ApiKey, Membership, Scope, Tenant, TenantGroup

DEMO_KEY_NAME = "demo"


class Command(BaseCommand):
    help = "Create the demo tenants, users and groups from fixtures/demo_tenants.json; print demo API keys."

    def add_arguments(self, parser):
        parser.add_argument("--fixture", default=str(Path(settings.BASE_DIR) / "fixtures" / "demo_tenants.json"))

    @transaction.atomic
    def handle(self, *args, fixture: str, **options):
        spec = json.loads(Path(fixture).read_text())
        for tenant_spec in spec["tenants"]:
            tenant = Tenant.objects.filter(slug=tenant_spec["slug"]).first() or services.tenant_create(
                slug=tenant_spec["slug"], name=tenant_spec["name"]
            )
            for user in tenant_spec["users"]:
                if not Membership.objects.filter(tenant=tenant, username=user["username"]).exists():
                    services.member_create(tenant=tenant, **user)
            for group_spec in tenant_spec["groups"]:
                group = TenantGroup.objects.filter(tenant=tenant, name=group_spec["name"]).first() or services.group_create(
                    tenant=tenant, name=group_spec["name"]
                )
                for username in group_spec["members"]:
                    services.group_member_add(group=group, membership=selectors.membership_get(tenant=tenant, username=username))

            for old in ApiKey.objects.usable().filter(tenant=tenant, name=DEMO_KEY_NAME):
                services.api_key_revoke(api_key=old)
            _, raw_key = services.api_key_create(tenant=tenant, name=DEMO_KEY_NAME, scopes=Scope.values)
            self.stdout.write(f"tenant {tenant.slug:<8} demo API key: {raw_key}")
