from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"
    verbose_name = "Answer audit"

    def ready(self) -> None:
        from .database_roles import apply_after_migrate

        # After every migrate, PostgreSQL's grants are recomputed (docs/audit.md, "Database privileges").
        post_migrate.connect(apply_after_migrate, sender=self, dispatch_uid="audit-database-roles")
