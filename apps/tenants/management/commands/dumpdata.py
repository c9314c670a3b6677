"""Django's `dumpdata`, about every tenant: a dump is an operator's backup or fixture of the whole
platform, so it reads tenant-owned models across tenants (without it, their fail-closed managers
refuse it; `--all` would also dump through the plain base managers)."""

from django.core.management.commands import dumpdata

from apps.tenants.scoping import crossing_tenants


class Command(dumpdata.Command):
    def handle(self, *app_labels, **options):
        with crossing_tenants():
            return super().handle(*app_labels, **options)
