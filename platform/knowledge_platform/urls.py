from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from apps.core import views as core_views
from apps.tenants.admin import AutocompleteView

api_v1 = [
    path("", include("apps.tenants.urls")),
    path("", include("apps.documents.urls")),
    path("", include("apps.answers.urls")),
    path("audit/", include("apps.audit.urls")),
    path("evaluation/", include("apps.evaluation.urls")),
]

urlpatterns = [
    path("health/live", core_views.LivenessView.as_view(), name="health-live"),
    path("health/ready", core_views.ReadinessView.as_view(), name="health-ready"),
    path("api/v1/", include(api_v1)),
    path("scim/v2/", include("apps.provisioning.urls")),  # a directory's provisioning (docs/identity.md)
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    # Before the admin's own routes: its autocomplete endpoint, limited to forward relations.
    path("admin/autocomplete/", AutocompleteView.as_view(admin_site=admin.site)),
    path("admin/", admin.site.urls),
]

handler404 = "apps.core.views.json_not_found"
handler500 = "apps.core.views.json_server_error"
