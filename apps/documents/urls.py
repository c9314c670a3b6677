from django.urls import path

from . import api

urlpatterns = [
    path("collections", api.CollectionListCreateView.as_view(), name="collection-list"),
    path("collections/<int:collection_id>", api.CollectionDetailView.as_view(), name="collection-detail"),
    path("collections/<int:collection_id>/grants", api.CollectionGrantsView.as_view(), name="collection-grants"),
    path("documents", api.DocumentListCreateView.as_view(), name="document-list"),
    path("documents/<int:document_id>", api.DocumentDetailView.as_view(), name="document-detail"),
    path("documents/<int:document_id>/versions", api.VersionListCreateView.as_view(), name="version-list"),
    path("documents/<int:document_id>/versions/<int:number>", api.VersionDetailView.as_view(), name="version-detail"),
    path(
        "documents/<int:document_id>/versions/<int:number>/content",
        api.VersionContentView.as_view(),
        name="version-content",
    ),
    path(
        "documents/<int:document_id>/versions/<int:number>/publish",
        api.VersionPublishView.as_view(),
        name="version-publish",
    ),
    path("documents/<int:document_id>/rollback", api.DocumentRollbackView.as_view(), name="document-rollback"),
    path("documents/<int:document_id>/archive", api.DocumentArchiveView.as_view(), name="document-archive"),
    path("documents/<int:document_id>/unarchive", api.DocumentUnarchiveView.as_view(), name="document-unarchive"),
    path("documents/<int:document_id>/purge", api.DocumentPurgeView.as_view(), name="document-purge"),
    path("documents/<int:document_id>/retention", api.DocumentRetentionView.as_view(), name="document-retention"),
    path("documents/<int:document_id>/history", api.DocumentHistoryView.as_view(), name="document-history"),
    path("documents/<int:document_id>/grants", api.DocumentGrantsView.as_view(), name="document-grants"),
]
