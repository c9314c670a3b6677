"""A small tenant library, ingested for real (parse, chunk, embed, index) and published:

    Handbook collection: travel policy, security policy   — readable by the 'staff' group (alice)
    Finance collection:  salary bands                      — readable by bob only

The owner reads everything by role."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.access.grants import Grant
from apps.access.levels import Level
from apps.documents import services as document_services
from apps.documents import services as documents
from apps.documents.models import Document
from apps.search.backends import get_search_backend
from apps.tenants import services as tenants
from apps.tenants.actors import Actor
from apps.tenants.models import Membership, Role, Scope
from tests.conftest import TenantWorld, key_client, user_client

TRAVEL = b"""# Travel policy

## Flights

Employees book economy class for flights under six hours. Business class is allowed for flights longer than six hours.

## Hotels

Hotel costs are reimbursed up to 150 euros per night. Receipts must be submitted within thirty days of the trip.
"""
SECURITY = b"""# Security policy

## Passwords

Passwords must be at least fourteen characters long and are never shared with colleagues.

## Remote access

Multi-factor authentication is required for all remote access to company systems.
"""
SALARIES = b"""# Salary bands

## Engineering

Salary bands for engineers range from 60,000 to 120,000 euros per year. Annual bonuses are paid every March.
"""


@dataclass
class Library:
    world: TenantWorld
    alice: Membership
    bob: Membership
    travel: Document
    security: Document
    salaries: Document

    def client(self, membership: Membership):
        return user_client(membership, self.world.tenant.slug)

    def app(self, scopes=(Scope.SEARCH, Scope.ASK)):
        return key_client(self.world.key(scopes=list(scopes)))


def add_document(tenant, collection, title: str, content: bytes, capture) -> Document:
    actor = Actor(user=None)
    with capture(execute=True):
        document = documents.document_create(
            tenant=tenant,
            collection=collection,
            actor=actor,
            title=title,
            file=SimpleUploadedFile(f"{title.lower().replace(' ', '-')}.md", content),
            publish_when_ready=True,
        )
    document.refresh_from_db()
    assert document.published_version is not None, document.versions.first().status_reason
    return document


@pytest.fixture
def library(acme, django_capture_on_commit_callbacks) -> Library:
    tenant = acme.tenant
    alice = tenants.member_create(tenant=tenant, username="alice", role=Role.READER)
    bob = tenants.member_create(tenant=tenant, username="bob", role=Role.READER)
    staff = tenants.group_create(tenant=tenant, name="staff")
    tenants.group_member_add(group=staff, membership=alice)
    handbook = documents.collection_create(tenant=tenant, name="Handbook")
    finance = documents.collection_create(tenant=tenant, name="Finance")
    with django_capture_on_commit_callbacks(execute=True):
        document_services.grants_replace(
            obj=handbook, grants=[Grant(staff.auth_group, Level.VIEW)], actor=Actor(user=None)
        )
        document_services.grants_replace(obj=finance, grants=[Grant(bob.user, Level.VIEW)], actor=Actor(user=None))
    library = Library(
        world=acme,
        alice=alice,
        bob=bob,
        travel=add_document(tenant, handbook, "Travel policy", TRAVEL, django_capture_on_commit_callbacks),
        security=add_document(tenant, handbook, "Security policy", SECURITY, django_capture_on_commit_callbacks),
        salaries=add_document(tenant, finance, "Salary bands", SALARIES, django_capture_on_commit_callbacks),
    )
    get_search_backend().refresh()
    return library
