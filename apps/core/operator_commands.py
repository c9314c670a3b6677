"""The base of the operator's commands (`tenant_create`, `member_create`, `api_key_create`,
`tenant_deactivate`): a script that provisions a deployment needs an exit code it can branch on and
output it can parse, so every one of them has both, the same way.

* ``--json``: stdout holds exactly one JSON object, the result, or ``{"error": {...}}`` on failure
  (the API's error body: message, code, extra), so a script never has to parse prose.
* Exit codes, by the kind of failure the services raise (apps/core/exceptions.py):

  ====  =====================================================================
  0     done
  1     invalid input (a malformed slug, an unknown role or scope, a past expiry)
  2     the command line itself is wrong (argparse: a missing or unknown option)
  3     something named does not exist (a tenant, a group)
  4     it already exists (a tenant slug, a username in the tenant)
  5     refused (the tenant is inactive)
  70    an unexpected failure (a bug, the database gone): the traceback is on stderr
  ====  =====================================================================

Under ``--json``, a usage error (exit 2) is argparse's: its text on stderr, stdout empty.

Each command runs in one transaction: a failure leaves nothing behind.

The commands run as the operator (whoever holds a shell and the database credentials), so they
call the services as a trusted caller; the services still validate everything they are given.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction

from .exceptions import ApplicationError, Conflict, NotFound, PermissionDenied

EXIT_INVALID = 1
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_REFUSED = 5
EXIT_INTERNAL = 70  # sysexits.h's EX_SOFTWARE


def exit_code(error: ApplicationError) -> int:
    if isinstance(error, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(error, Conflict):
        return EXIT_CONFLICT
    if isinstance(error, PermissionDenied):
        return EXIT_REFUSED
    return EXIT_INVALID


class OperatorCommand(BaseCommand):
    """Subclasses implement `operate(**options)`, returning the result as a JSON-able dict, and
    `describe(result)`, the lines a person reads; failures are ApplicationErrors."""

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the result (or the error) as one JSON object.")

    # Declared, not defined: each command names its own options as keyword arguments, which a
    # defined base method would forbid its overrides to do.
    operate: Callable[..., dict[str, Any]]

    def describe(self, result: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    def handle(self, *args, **options):
        as_json = options.pop("json")
        try:
            with transaction.atomic():
                result = self.operate(**options)
        except IntegrityError as error:
            # A uniqueness race the services' own checks could not see: another script made the same
            # tenant or member a moment earlier. The same answer as their Conflict.
            raise self._fail(
                Conflict("That conflicts with a change made at the same moment; try again.", code="conflict"),
                as_json,
            ) from error
        except ApplicationError as error:
            raise self._fail(error, as_json) from error
        except Exception as error:
            self.stderr.write(traceback.format_exc())
            unexpected = ApplicationError(f"Unexpected failure: {type(error).__name__}: {error}", code="internal_error")
            raise self._fail(unexpected, as_json, returncode=EXIT_INTERNAL) from error
        if as_json:
            self._write_json(result)
        else:
            for line in self.describe(result):
                self.stdout.write(line)

    def _fail(self, error: ApplicationError, as_json: bool, returncode: int | None = None) -> CommandError:
        if as_json:
            self._write_json({"error": {"message": error.message, "code": error.code, "extra": error.extra}})
        return CommandError(error.message, returncode=returncode or exit_code(error))

    def _write_json(self, payload: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(payload, cls=DjangoJSONEncoder, indent=2, sort_keys=True))
