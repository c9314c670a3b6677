from django.urls import path

from . import api

urlpatterns = [
    path("records", api.RecordListView.as_view(), name="audit-records"),
    path("records/<int:record_id>", api.RecordDetailView.as_view(), name="audit-record"),
    path("records/<int:record_id>/proof", api.RecordProofView.as_view(), name="audit-record-proof"),
    path("records/<int:record_id>/replay", api.RecordReplayView.as_view(), name="audit-record-replay"),
    path("records/<int:record_id>/reviews", api.RecordReviewView.as_view(), name="audit-record-review"),
    path("export", api.ExportView.as_view(), name="audit-export"),
]
