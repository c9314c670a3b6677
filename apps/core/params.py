"""Integers from query strings. `str.isdigit` accepts '²' and other digits `int()` refuses, and
`int()` reads Arabic-Indic or full-width digits that no client means: a number in a URL is ASCII
digits only, checked here once."""

from __future__ import annotations

from .exceptions import ApplicationError

MAX_BIGINT = 2**63 - 1  # what a database id or offset holds


def is_ascii_digits(value: str) -> bool:
    """'0'-'9' only, at least one: no sign, no spaces, no '²', no other scripts' digits."""
    return value.isascii() and value.isdecimal()


def parse_int(value: str, *, field: str, minimum: int = 0, maximum: int = MAX_BIGINT) -> int:
    """The integer `value` names, or a 400 naming `field` and the range it must be in."""
    if not is_ascii_digits(value) or not minimum <= int(value) <= maximum:
        message = f"{field} must be an integer from {minimum} to {maximum}."
        raise ApplicationError(message, code="invalid", extra={"fields": {field: [message]}})
    return int(value)


def parse_id(value: str, *, field: str) -> int:
    """A positive database id."""
    return parse_int(value, field=field, minimum=1)
