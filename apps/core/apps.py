from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from django.core import checks
        from django.db.backends.signals import connection_created

        from .db import install
        from .throttling import check_rates

        checks.register(check_rates)
        connection_created.connect(install, dispatch_uid="core.reprepare_after_schema_change")
