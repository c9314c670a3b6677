from __future__ import annotations

import abc


class SearchBackendError(Exception):
    """The search backend could not do what was asked (down, misconfigured, refused)."""


class SearchBackend(abc.ABC):
    """The interface every search backend implements.

    The foundation needs only `health`; indexing and search arrive with the search issue,
    written once against this class so callers never branch on the backend.
    """

    name: str

    @abc.abstractmethod
    def health(self) -> str:
        """A one-line description of a healthy backend; raises SearchBackendError otherwise."""

    def close(self) -> None:
        """Release connections. Safe to call more than once."""
