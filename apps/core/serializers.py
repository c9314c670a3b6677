"""Serializer helpers shared by the APIs."""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework import serializers


class StrictInputSerializer(serializers.Serializer):
    """Input naming a field we do not know is refused (400, per field) rather than silently ignored:
    a misspelt filter must not quietly widen a search. Works nested, too."""

    def to_internal_value(self, data):
        unknown = {}
        if isinstance(data, Mapping):
            known = ", ".join(sorted(self.fields))
            unknown = {name: [f"Unknown field. Known fields: {known}."] for name in data if name not in self.fields}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from exc
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class StringField(serializers.CharField):
    """DRF's CharField, taking strings only: DRF turns a JSON number into its text (`{"name": 42}`
    makes a group named "42"), where the schema promises a string and a client sending a number has
    a bug worth a 400. Query strings and form fields are text already, so they are unaffected."""

    default_error_messages = {"invalid": "Not a valid string: send this field as JSON text (in quotes)."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
