from django.apps import AppConfig


class CorpusConfig(AppConfig):
    name = "apps.corpus"
    label = "corpus"
    verbose_name = "Corpus"

    def ready(self) -> None:
        from django.core import checks

        from . import services
        from .query_encoder import check_query_encoder

        services.connect()
        checks.register(check_query_encoder)
