from urllib.parse import urlencode

import pytest
from rest_framework.test import APIClient

from apps.tenants.models import Scope


class ScimClient:
    """A directory's SCIM client: a bearer key, SCIM's media type, JSON in and out."""

    def __init__(self, raw_key: str):
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    def request(self, method: str, path: str, body=None, **params):
        kwargs = {"data": body, "format": "json"} if body is not None else {}
        query = f"?{urlencode(params)}" if params else ""
        response = getattr(self.client, method)(f"/scim/v2/{path}{query}", **kwargs)
        assert response.status_code == 204 or response["Content-Type"].startswith("application/scim+json")
        return response.status_code, (response.json() if response.content else None)

    def get(self, path, **params):
        return self.request("get", path, **params)

    def post(self, path, body):
        return self.request("post", path, body)

    def put(self, path, body):
        return self.request("put", path, body)

    def patch(self, path, *operations):
        return self.request(
            "patch",
            path,
            {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list(operations)},
        )

    def delete(self, path):
        return self.request("delete", path)


@pytest.fixture
def directory(acme) -> ScimClient:
    """acme's identity provider, holding a key with the scim scope only."""
    return ScimClient(acme.key(scopes=[Scope.SCIM]))
