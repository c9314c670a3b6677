"""Teaches drf-spectacular how API keys authenticate, so the OpenAPI schema documents it."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apps.tenants.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`: the key shown once when it was created.",
        }


class ThrottledBasicAuthenticationScheme(OpenApiAuthenticationExtension):
    """Basic authentication with failed attempts limited: documented as plain HTTP Basic, as before."""

    target_class = "apps.tenants.authentication.ThrottledBasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic"}
