"""Create an API key for a tenant app and print it, once: only its digest is stored.

    python manage.py api_key_create --tenant acme --name intranet --scopes search,ask,act_as_user \
        [--expires-in-days 90 | --expires-at 2027-06-30T00:00Z] [--json]

The operator may give any scope (audit:read for the compliance team's tool, act_as_user for a tenant
app that acts for its people); a tenant's own owners and admins create keys through the API, within
what their role may use. Exit codes and --json: apps/core/operator_commands.py.
"""

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.core.exceptions import ApplicationError
from apps.core.operator_commands import OperatorCommand
from apps.tenants import services
from apps.tenants.models import Scope
from apps.tenants.operator import active_tenant_get, api_key_summary


class Command(OperatorCommand):
    help = "Create an API key for a tenant and print the raw key once. Exit 1 for an unknown scope."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument("--name", required=True, help="What the key is for, as shown in key lists.")
        parser.add_argument(
            "--scopes",
            required=True,
            action="append",
            metavar="SCOPE[,SCOPE...]",
            help=f"Comma-separated, repeatable: {', '.join(Scope.values)}.",
        )
        expiry = parser.add_mutually_exclusive_group()
        expiry.add_argument("--expires-in-days", type=int, metavar="DAYS")
        expiry.add_argument("--expires-at", metavar="ISO-8601", help="For example 2027-06-30T00:00:00Z.")
        super().add_arguments(parser)

    def operate(self, *, tenant: str, name: str, scopes: list[str], **options):
        found = active_tenant_get(tenant)
        requested = [scope.strip() for value in scopes for scope in value.split(",") if scope.strip()]
        api_key, raw_key = services.api_key_create(
            tenant=found, name=name, scopes=requested, expires_at=_expiry(options)
        )
        return {"api_key": api_key_summary(api_key), "key": raw_key}

    def describe(self, result):
        api_key = result["api_key"]
        expiry = f"expires {api_key['expires_at']:%Y-%m-%d %H:%M} UTC" if api_key["expires_at"] else "never expires"
        return [
            f"Created API key '{api_key['name']}' for tenant {api_key['tenant']} "
            f"(scopes {', '.join(api_key['scopes'])}; {expiry}). The key, shown this once:",
            result["key"],
        ]


def _expiry(options) -> datetime | None:
    if options["expires_in_days"] is not None:
        if options["expires_in_days"] < 1:
            raise ApplicationError("--expires-in-days needs a whole number of days, 1 or more.", code="invalid_expiry")
        try:
            return timezone.now() + timedelta(days=options["expires_in_days"])
        except OverflowError:  # past year 9999
            raise ApplicationError(
                f"--expires-in-days {options['expires_in_days']} is past the last date there is; "
                "leave the option out for a key that never expires.",
                code="invalid_expiry",
            ) from None
    if options["expires_at"]:
        try:
            when = parse_datetime(options["expires_at"])
        except ValueError:  # well formed, but no such date (month 13, hour 25)
            when = None
        if when is None:
            raise ApplicationError(
                f"--expires-at {options['expires_at']!r} is not an ISO-8601 date and time "
                "(for example 2027-06-30T00:00:00Z).",
                code="invalid_expiry",
            )
        try:  # stored and printed in UTC; no offset means UTC
            return when.astimezone(UTC) if timezone.is_aware(when) else when.replace(tzinfo=UTC)
        except OverflowError:  # 9999-12-31T23:00-05:00 is past the last date there is in UTC
            raise ApplicationError(
                f"--expires-at {options['expires_at']!r} is past the last date there is.", code="invalid_expiry"
            ) from None
    return None
