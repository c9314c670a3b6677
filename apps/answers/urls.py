from django.urls import path

from . import api

urlpatterns = [
    path("search", api.SearchView.as_view(), name="search"),
    path("ask", api.AskView.as_view(), name="ask"),
]
