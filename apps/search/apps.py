from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "apps.search"
    label = "search"
    verbose_name = "Search"

    def ready(self) -> None:
        from apps.core import health

        from . import sync
        from .backends import get_search_backend

        sync.connect()
        health.register("search", lambda: get_search_backend().health())
