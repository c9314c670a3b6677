from django.urls import path

from . import api

urlpatterns = [
    path("golden-sets", api.GoldenSetListView.as_view(), name="golden-sets"),
    path("golden-sets/<int:golden_set_id>", api.GoldenSetDetailView.as_view(), name="golden-set"),
    path("golden-sets/<int:golden_set_id>/questions", api.QuestionListView.as_view(), name="golden-questions"),
    path(
        "golden-sets/<int:golden_set_id>/questions/<int:question_id>",
        api.QuestionDetailView.as_view(),
        name="golden-question",
    ),
    path("runs", api.RunListView.as_view(), name="evaluation-runs"),
    path("runs/<int:run_id>", api.RunDetailView.as_view(), name="evaluation-run"),
    path("runs/<int:run_id>/compare/<int:other_id>", api.RunCompareView.as_view(), name="evaluation-compare"),
]
