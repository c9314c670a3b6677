"""Create a tenant (with its 'everyone' group) and, optionally, its first owner.

    python manage.py tenant_create acme --name "Acme Corporation" \
        [--owner olivia --owner-email olivia@acme.example] [--json]

The owner is a member without a password: people sign in through the tenant app or single sign-on.
Exit codes and --json: apps/core/operator_commands.py.
"""

from apps.core.exceptions import ApplicationError
from apps.core.operator_commands import OperatorCommand
from apps.tenants import services
from apps.tenants.models import Role
from apps.tenants.operator import member_summary, tenant_summary


class Command(OperatorCommand):
    help = "Create a tenant and, with --owner, its first owner. Exit 4 if the slug is taken."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The tenant's stable identifier (letters, digits, - and _).")
        parser.add_argument("--name", required=True, help="The tenant's display name.")
        parser.add_argument("--owner", metavar="USERNAME", help="Create this member with the owner role.")
        parser.add_argument("--owner-email", default="", metavar="EMAIL")
        super().add_arguments(parser)

    def operate(self, *, slug: str, name: str, owner: str | None, owner_email: str, **options):
        if owner is None and owner_email:
            raise ApplicationError("--owner-email needs --owner (the owner's username).", code="invalid_owner")
        tenant = services.tenant_create(slug=slug, name=name)
        result = {"tenant": tenant_summary(tenant), "owner": None}
        if owner is not None:  # "" is a username member_create refuses, not "no owner"
            membership = services.member_create(tenant=tenant, username=owner, role=Role.OWNER, email=owner_email)
            result["owner"] = member_summary(membership, groups=["everyone"])
        return result

    def describe(self, result):
        tenant, owner = result["tenant"], result["owner"]
        lines = [f"Created tenant {tenant['slug']} ({tenant['name']})."]
        if owner:
            lines.append(f"Created its owner {owner['username']}.")
        return lines
