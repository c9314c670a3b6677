import pytest

from apps.tenants import services as tenants
from apps.tenants.models import Role
from tests.answers.conftest import library  # noqa: F401  (the same ingested tenant library)


@pytest.fixture
def auditor(library):
    """A member of the compliance team."""
    return tenants.member_create(tenant=library.world.tenant, username="carol", role=Role.COMPLIANCE)


@pytest.fixture
def records(library):
    """A few searches and asks by different people: their audit records."""
    ids = []
    for who, endpoint, query in [
        (library.alice, "/api/v1/search", "how long must passwords be"),
        (library.alice, "/api/v1/ask", "Can I fly business class?"),
        (library.bob, "/api/v1/ask", "When are bonuses paid?"),
        (library.bob, "/api/v1/search", "capital of France"),
    ]:
        response = library.client(who).post(endpoint, {"query": query}, format="json")
        assert response.status_code == 200, response.content
        ids.append(response.json()["audit_id"])
    return ids
