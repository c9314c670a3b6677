from django.urls import path

from . import api

urlpatterns = [
    path("tenant", api.TenantContextView.as_view(), name="tenant-context"),
    path("users", api.UserListCreateView.as_view(), name="user-list"),
    path("users/<str:username>", api.UserDetailView.as_view(), name="user-detail"),
    path("users/<str:username>/deactivate", api.UserDeactivateView.as_view(), name="user-deactivate"),
    path("users/<str:username>/activate", api.UserActivateView.as_view(), name="user-activate"),
    path("groups", api.GroupListCreateView.as_view(), name="group-list"),
    path("groups/<int:group_id>", api.GroupDetailView.as_view(), name="group-detail"),
    path("groups/<int:group_id>/members", api.GroupMemberAddView.as_view(), name="group-member-add"),
    path(
        "groups/<int:group_id>/members/<str:username>", api.GroupMemberRemoveView.as_view(), name="group-member-remove"
    ),
    path("directory-events", api.DirectoryEventListView.as_view(), name="directory-event-list"),
    path("api-keys", api.ApiKeyListCreateView.as_view(), name="api-key-list"),
    path("api-keys/<str:prefix>/revoke", api.ApiKeyRevokeView.as_view(), name="api-key-revoke"),
]
