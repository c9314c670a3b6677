"""Suspend a tenant, or lift the suspension with --reactivate.

    python manage.py tenant_deactivate acme [--reactivate] [--json]

From the next request on, every key and member of the tenant is refused (403, tenant_inactive), and
so is work a worker starts for it later; nothing is deleted or revoked, so --reactivate restores it.
Exit codes and --json: apps/core/operator_commands.py.
"""

from apps.core.operator_commands import OperatorCommand
from apps.tenants import services
from apps.tenants.operator import tenant_get, tenant_summary


class Command(OperatorCommand):
    help = "Suspend a tenant (every request of its keys and members refused), or lift it with --reactivate."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--reactivate", action="store_true", help="Lift the suspension instead.")
        super().add_arguments(parser)

    def operate(self, *, slug: str, reactivate: bool, **options):
        tenant = tenant_get(slug)
        changed = services.tenant_set_active(tenant=tenant, active=reactivate)
        return {"tenant": tenant_summary(tenant), "changed": changed}

    def describe(self, result):
        tenant = result["tenant"]
        state = "active" if tenant["is_active"] else "suspended: its keys and members are refused"
        return [f"Tenant {tenant['slug']} is {state}{'' if result['changed'] else ' (it already was)'}."]
