"""The Elasticsearch backend, on the official Python client. The only module that talks to
Elasticsearch."""

from __future__ import annotations

from elasticsearch import Elasticsearch
from elasticsearch import exceptions as es_exceptions

from .base import SearchBackend, SearchBackendError


def build_client(config: dict) -> Elasticsearch:
    options: dict = {
        "hosts": [config["URL"]],
        "request_timeout": config["REQUEST_TIMEOUT"],
        "retry_on_timeout": True,
        "max_retries": 2,
    }
    if config["URL"].startswith("https://"):  # the client refuses TLS options on plain http
        options["verify_certs"] = config["VERIFY_CERTS"]
        if config["CA_CERTS"]:
            options["ca_certs"] = config["CA_CERTS"]
    if config["API_KEY"]:
        options["api_key"] = config["API_KEY"]
    elif config["USERNAME"]:
        options["basic_auth"] = (config["USERNAME"], config["PASSWORD"])
    return Elasticsearch(**options)


class ElasticsearchBackend(SearchBackend):
    name = "elasticsearch"

    def __init__(self, config: dict):
        self.config = config
        self.client = build_client(config)

    def health(self) -> str:
        try:
            health = self.client.options(request_timeout=3, max_retries=0).cluster.health()
        except es_exceptions.ApiError as exc:
            raise SearchBackendError(f"Elasticsearch at {self.config['URL']}: {exc.message}") from exc
        except es_exceptions.TransportError as exc:
            raise SearchBackendError(f"Elasticsearch at {self.config['URL']} unreachable: {exc}") from exc
        if health["status"] == "red":
            raise SearchBackendError(f"cluster {health['cluster_name']} is red")
        return f"cluster {health['cluster_name']} {health['status']}, {health['number_of_nodes']} node(s)"

    def close(self) -> None:
        self.client.close()
