"""Real connections to the full profile's services: PostgreSQL, Redis, Elasticsearch (TLS with the
configured CA and credentials). Under CI=true these fail, never skip, when a service is missing."""

import secrets

import pytest
import redis
from celery import current_app as celery_app
from django.conf import settings
from django.db import connection

from apps.search.backends import get_search_backend

pytestmark = pytest.mark.full_profile


@pytest.mark.django_db
def test_the_database_is_postgresql():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        assert int(cursor.fetchone()[0].split(".")[0]) >= 13


def test_celery_uses_redis_as_its_broker_and_it_answers():
    assert settings.CELERY_TASK_ALWAYS_EAGER is False
    assert celery_app.conf.broker_url.startswith("redis://")
    assert redis.Redis.from_url(celery_app.conf.broker_url).ping() is True


def test_elasticsearch_over_tls_with_the_configured_ca_and_credentials():
    config = settings.SEARCH["ELASTICSEARCH"]
    assert settings.SEARCH_BACKEND == "elasticsearch"
    assert config["URL"].startswith("https://") and config["CA_CERTS"]
    backend = get_search_backend()
    versions = {node["version"] for node in backend.client.nodes.info()["nodes"].values()}
    assert {v.split(".")[0] for v in versions} == {"9"}
    assert "green" in backend.health() or "yellow" in backend.health()


def test_elasticsearch_refuses_wrong_credentials():
    from apps.search.backends.base import SearchBackendError
    from apps.search.backends.elasticsearch import ElasticsearchBackend

    backend = ElasticsearchBackend({**settings.SEARCH["ELASTICSEARCH"], "PASSWORD": "wrong"})
    with pytest.raises(SearchBackendError, match=r"unable to authenticate|401|security_exception"):
        backend.health()
    backend.close()


@pytest.mark.django_db
def test_values_are_bound_by_the_server_and_a_repeated_statement_is_prepared():
    """settings/base.py (DATABASE_PREPARED_STATEMENTS, on by default): a value never becomes SQL
    text, and a statement sent more than five times on a connection is prepared there, so it is
    parsed and planned once per connection."""
    from apps.tenants.models import Tenant

    marker = f"prepared-{secrets.token_hex(4)}"
    for _ in range(7):
        assert not Tenant.objects.filter(slug=marker).exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [row[0] for row in cursor.fetchall()]
    tenant_lookups = [s for s in statements if '"tenants_tenant"' in s and '"slug"' in s]
    assert tenant_lookups, statements
    assert all("$1" in s and marker not in s for s in tenant_lookups), tenant_lookups
