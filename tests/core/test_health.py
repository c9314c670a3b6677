import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings


def test_liveness(api):
    response = api.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readiness_reports_each_dependency_of_the_running_profile(api):
    response = api.get("/health/ready")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    checks = body["checks"]
    assert {name: check["status"] for name, check in checks.items()} == {
        "database": "ok",
        "broker": "ok",
        "search": "ok",
    }
    assert checks["database"]["detail"].startswith(connection.vendor)
    if settings.PLATFORM_PROFILE == "full":
        assert connection.vendor == "postgresql"
        assert "redis" in checks["broker"]["detail"].lower()
        assert checks["search"]["detail"].startswith("cluster ")
    else:
        assert connection.vendor == "sqlite"
        assert checks["broker"]["detail"].startswith("eager")
        assert "FTS5" in checks["search"]["detail"]


@pytest.mark.django_db
def test_readiness_is_503_and_names_an_unreachable_search_engine(api):
    search = {**settings.SEARCH, "ELASTICSEARCH": {**settings.SEARCH["ELASTICSEARCH"], "URL": "http://127.0.0.1:1"}}
    with override_settings(SEARCH_BACKEND="elasticsearch", SEARCH=search):
        response = api.get("/health/ready")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "error"
    assert body["checks"]["search"]["status"] == "error"
    assert "127.0.0.1:1" in body["checks"]["search"]["detail"]
    assert body["checks"]["database"]["status"] == "ok"


@pytest.mark.django_db
def test_readiness_is_503_when_the_embedded_index_cannot_be_opened(api, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    search = {**settings.SEARCH, "EMBEDDED": {"PATH": str(blocker / "search.sqlite3")}}
    with override_settings(SEARCH_BACKEND="embedded", SEARCH=search):
        response = api.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["search"]["status"] == "error"


@pytest.mark.django_db
def test_readiness_is_503_when_the_broker_is_unreachable(api):
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL="redis://127.0.0.1:1/0"):
        response = api.get("/health/ready")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["broker"]["status"] == "error"
    assert body["checks"]["database"]["status"] == "ok"
