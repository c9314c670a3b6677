"""Create a person in a tenant, with a role and, optionally, in some of its groups.

    python manage.py member_create --tenant acme hannah.hr --role reader --email hannah@acme.example --group HR [--json]

The member has no password: they sign in through the tenant app (which acts for them) or single
sign-on. Groups must exist in that tenant. Exit codes and --json: apps/core/operator_commands.py.
"""

from apps.core.exceptions import NotFound
from apps.core.operator_commands import OperatorCommand
from apps.tenants import selectors, services
from apps.tenants.models import Role
from apps.tenants.operator import active_tenant_get, member_summary


class Command(OperatorCommand):
    help = "Create a member of a tenant (no password). Exit 3 for an unknown tenant or group, 4 if the name is taken."

    def add_arguments(self, parser):
        parser.add_argument("username", help="The tenant-local username.")
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument("--role", default=Role.READER, help=f"One of {', '.join(Role.values)} (default reader).")
        parser.add_argument("--email", default="")
        parser.add_argument("--first-name", default="")
        parser.add_argument("--last-name", default="")
        parser.add_argument(
            "--group", action="append", default=[], metavar="NAME", help="A group of the tenant to join (repeatable)."
        )
        super().add_arguments(parser)

    def operate(self, *, tenant: str, username: str, role: str, group: list[str], **options):
        found = active_tenant_get(tenant)
        groups = {g.name: g for g in selectors.group_list(tenant=found)}
        unknown = [name for name in group if name not in groups]
        if unknown:
            raise NotFound(
                f"No group {', '.join(map(repr, unknown))} in tenant '{found.slug}': "
                f"it has {', '.join(sorted(groups))}.",
                code="group_not_found",
            )
        membership = services.member_create(
            tenant=found,
            username=username,
            role=role,
            email=options["email"],
            first_name=options["first_name"],
            last_name=options["last_name"],
        )
        for name in dict.fromkeys(group):
            if not groups[name].is_everyone:  # every member is in it already
                services.group_member_add(group=groups[name], membership=membership)
        joined = [g.name for g in selectors.group_list(tenant=found).filter(auth_group__user=membership.user)]
        return {"member": member_summary(membership, groups=joined)}

    def describe(self, result):
        member = result["member"]
        return [
            f"Created {member['username']} in tenant {member['tenant']} as {member['role']}, "
            f"in group(s) {', '.join(member['groups'])}."
        ]
