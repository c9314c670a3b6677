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
from apps.answers.types import ChunkFacts, Passage, RankedChunk
from apps.corpus.models import Chunk, Section
from apps.documents import services as document_services
from apps.documents import services as documents
from apps.documents.models import Document
from apps.search.backends import get_search_backend
from apps.search.types import SearchHit
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


def _hit_of(chunk: Chunk, version, rank: int) -> SearchHit:
    return SearchHit(
        chunk_id=chunk.id,
        document_id=version.document_id,
        version_id=version.pk,
        collection_id=version.document.collection_id,
        rank=rank,
        score=1.0,
        components={},
        title="",
        text=chunk.text,
        highlights=[],
    )


def version_passages(tenant, version) -> tuple[list[Passage], list[Passage]]:
    """(every section of the version as a whole passage, every chunk as a lone passage: what
    context assembly gives when a section is too long for the budget), for the generator's tests."""
    chunks = list(Chunk.objects.for_tenant(tenant).filter(version=version))
    facts = {  # as an ask's re-check loads them
        row["id"]: ChunkFacts.of(row)
        for row in Chunk.objects.for_tenant(tenant)
        .filter(version=version)
        .values(*ChunkFacts.COLUMNS, *ChunkFacts.SECTION_COLUMNS)
    }
    ranked = [
        RankedChunk(hit=_hit_of(c, version, n + 1), fused_rank=n + 1, facts=facts[c.id], passed_recheck=True)
        for n, c in enumerate(chunks)
    ]
    by_section: dict[int, list[RankedChunk]] = {}
    for r in ranked:
        by_section.setdefault(r.facts.section.section_id, []).append(r)
    wholes = []
    for n, section in enumerate(Section.objects.for_tenant(tenant).filter(version=version)):
        held = by_section.get(section.pk)
        if not held:
            continue  # a section no chunk lies in is never a passage
        wholes.append(
            Passage(
                number=n + 1,
                document_id=version.document_id,
                version_id=version.pk,
                title="",
                text=section.text,
                start_offset=section.start_offset,
                end_offset=section.end_offset,
                chunks=held,
                tokens=0,
                section_id=section.pk,
            )
        )
    lone = [
        Passage(
            number=n + 1,
            document_id=version.document_id,
            version_id=version.pk,
            title="",
            text=r.facts.text,
            start_offset=r.facts.start_offset,
            end_offset=r.facts.end_offset,
            chunks=[r],
            tokens=0,
        )
        for n, r in enumerate(ranked)
    ]
    return wholes, lone
