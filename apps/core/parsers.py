"""The JSON parser of every API view: DRF's, refusing two kinds of JSON it would let through to
become 500s later.

* Nesting deeper than Python's recursion limit (``[[[[…`` a hundred thousand times) makes the
  json module raise RecursionError, which DRF does not catch.
* ``"\\ud800"`` is valid JSON but not Unicode text: a lone surrogate cannot be encoded as UTF-8,
  so the database, the audit hash and even the error message echoing it back fail. CharFields
  refuse them already; keys, dicts and lists were not covered.

Both are the caller's to fix: a 400 parse error, like any other malformed body."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        _refuse_lone_surrogates(data)
        return data


def _refuse_lone_surrogates(data) -> None:
    stack = [data]  # iterative: the parsed value may be nested close to the recursion limit
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ParseError(
                    "JSON parse error - a string holds a lone surrogate (an unpaired \\ud800–\\udfff escape), "
                    "which is not Unicode text."
                ) from None
