"""Search backends. Everything above this package talks to a `SearchBackend`, never to
Elasticsearch or SQLite directly; `get_search_backend()` picks the configured one."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .base import SearchBackend, SearchBackendError

_built: dict[str, SearchBackend] = {}


def _build(name: str) -> SearchBackend:
    if name == "embedded":
        from .embedded import EmbeddedBackend

        return EmbeddedBackend(settings.SEARCH["EMBEDDED"])
    if name == "elasticsearch":
        from .elasticsearch import ElasticsearchBackend

        return ElasticsearchBackend(settings.SEARCH["ELASTICSEARCH"])
    raise ImproperlyConfigured(f"SEARCH_BACKEND={name!r}: use 'embedded' or 'elasticsearch'.")


def get_search_backend(name: str | None = None) -> SearchBackend:
    """The configured backend (or the one named), built once per process."""
    name = name or settings.SEARCH_BACKEND
    if name not in _built:
        _built[name] = _build(name)
    return _built[name]


def reset_search_backends() -> None:
    """Close and forget built backends; tests call it after changing search settings."""
    while _built:
        _built.popitem()[1].close()


__all__ = ["SearchBackend", "SearchBackendError", "get_search_backend", "reset_search_backends"]
