"""Load the demo tenants, people, groups, collections, grants and documents from fixtures/demo/
(idempotent: what exists is left alone) and issue a fresh demo API key per tenant.

The raw keys are printed, not stored: each run revokes the previous demo keys and prints new ones.
"""

import json
from datetime import date
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.access.grants import Grant
from apps.access.levels import Level
from apps.documents import services as document_services
from apps.documents.models import Collection, Document
from apps.tenants import selectors, services
from apps.tenants.actors import Actor
from apps.tenants.models import ApiKey, Membership, Scope, Tenant, TenantGroup

DEMO_KEY_NAME = "demo"
FIXTURES = Path(settings.BASE_DIR) / "fixtures" / "demo"


class Command(BaseCommand):
    help = "Create the demo tenants and their documents from fixtures/demo/; print demo API keys."

    def add_arguments(self, parser):
        parser.add_argument("--fixture", default=str(FIXTURES / "tenants.json"))

    @transaction.atomic
    def handle(self, *args, fixture: str, **options):
        folder = Path(fixture).parent
        spec = json.loads(Path(fixture).read_text())
        for tenant_spec in spec["tenants"]:
            tenant = self._tenant(tenant_spec)
            created = sum(self._collection(tenant, c, folder) for c in tenant_spec.get("collections", []))
            for old in ApiKey.objects.usable().filter(tenant=tenant, name=DEMO_KEY_NAME):
                services.api_key_revoke(api_key=old)
            _, raw_key = services.api_key_create(tenant=tenant, name=DEMO_KEY_NAME, scopes=Scope.values)
            self.stdout.write(f"tenant {tenant.slug:<8} {created} new document(s)   demo API key: {raw_key}")
        self.stdout.write("New documents are ingested (parsed, chunked, embedded, indexed) and published once ready.")

    def _tenant(self, spec: dict) -> Tenant:
        tenant = Tenant.objects.filter(slug=spec["slug"]).first() or services.tenant_create(
            slug=spec["slug"], name=spec["name"]
        )
        for user in spec["users"]:
            if not Membership.objects.filter(tenant=tenant, username=user["username"]).exists():
                services.member_create(tenant=tenant, **user)
        for group_spec in spec["groups"]:
            group = TenantGroup.objects.filter(tenant=tenant, name=group_spec["name"]).first() or services.group_create(
                tenant=tenant, name=group_spec["name"]
            )
            for username in group_spec["members"]:
                services.group_member_add(
                    group=group, membership=selectors.membership_get(tenant=tenant, username=username)
                )
        return tenant

    def _grants(self, tenant: Tenant, specs: list[dict]) -> list[Grant]:
        return [
            Grant(TenantGroup.objects.get(tenant=tenant, name=g["group"]).auth_group, Level.parse(g["level"]))
            for g in specs
        ]

    def _collection(self, tenant: Tenant, spec: dict, folder: Path) -> int:
        actor = Actor(user=None)
        collection = Collection.objects.filter(tenant=tenant, name=spec["name"]).first()
        if collection is None:
            collection = document_services.collection_create(
                tenant=tenant, name=spec["name"], description=spec.get("description", "")
            )
            document_services.grants_replace(
                obj=collection, grants=self._grants(tenant, spec.get("grants", [])), actor=actor
            )
        created = 0
        for doc in spec["documents"]:
            if Document.objects.filter(tenant=tenant, collection=collection, title=doc["title"]).exists():
                continue
            path = folder / doc["file"]
            metadata = {k: doc[k] for k in ("category", "tags", "author") if k in doc}
            if "effective_date" in doc:
                metadata["effective_date"] = date.fromisoformat(doc["effective_date"])
            document = document_services.document_create(
                tenant=tenant,
                collection=collection,
                title=doc["title"],
                actor=actor,
                file=SimpleUploadedFile(path.name, path.read_bytes()),
                change_note="demo corpus",
                publish_when_ready=True,
                **metadata,
            )
            if "grants" in doc:
                document_services.grants_replace(obj=document, grants=self._grants(tenant, doc["grants"]), actor=actor)
            created += 1
        return created
