from django.urls import path, re_path

from . import api

# SCIM's own names and case (RFC 7644 §3.2), as identity providers are configured to call them.
urlpatterns = [
    path("Users", api.UserListView.as_view(), name="scim-users"),
    path("Users/<str:user_id>", api.UserDetailView.as_view(), name="scim-user"),
    path("Groups", api.GroupListView.as_view(), name="scim-groups"),
    path("Groups/<str:group_id>", api.GroupDetailView.as_view(), name="scim-group"),
    path("ServiceProviderConfig", api.ServiceProviderConfigView.as_view(), name="scim-service-provider-config"),
    path("ResourceTypes", api.ResourceTypesView.as_view(), name="scim-resource-types"),
    path("Schemas", api.SchemasView.as_view(), name="scim-schemas"),
    re_path(r"", api.NotFoundView.as_view()),  # last: any other path is a SCIM 404
]
