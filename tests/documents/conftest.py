import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.documents import services
from apps.documents.models import IngestionStatus
from apps.tenants.models import Scope
from tests.conftest import key_client

POLICY_V1 = b"# Travel policy\n\nEmployees book economy class for flights under six hours.\n"
POLICY_V2 = b"# Travel policy\n\nEmployees book economy class for flights under eight hours.\n"


def text_file(content: bytes = POLICY_V1, name: str = "travel-policy.md") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content)


def make_ready(document_id: int, number: int) -> None:
    """What the ingestion pipeline does when a version is parsed, chunked, embedded and indexed."""
    from apps.documents.models import DocumentVersion

    version = DocumentVersion.objects.across_tenants().get(document_id=document_id, number=number)
    services.version_set_status(version=version, status=IngestionStatus.READY)


@pytest.fixture
def writer(acme):
    return key_client(acme.key(scopes=[Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE]))


@pytest.fixture
def collection(writer):
    response = writer.post("/api/v1/collections", {"name": "Policies"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def document(writer, collection):
    response = writer.post(
        "/api/v1/documents",
        {"collection": collection["id"], "title": "Travel policy", "category": "policy", "file": text_file()},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return response.json()
