"""Announcements between layers: a lower app says what happened, the apps above it that keep
derived state subscribe. The lower app never imports its subscribers, so the layers point one way
(docs/architecture.md, "Layers"); Wagtail's search/signal_handlers.py is the model.

An app owns its registry and its event types (apps/documents/events.py, apps/corpus/events.py);
subscribers connect in their AppConfig.ready(). Two deliveries:

- after commit (the default): the handler runs once the surrounding transaction commits, never
  for a change that was rolled back. Such handlers only queue work (a task); one that fails is
  logged and the others still run, and the periodic sweeps make good what it missed.
- immediately (`immediately=True`): the handler runs at once, inside the announcer's
  transaction if there is one, and its error is the announcer's error. For derived rows that must change
  atomically with the fact (a purge forgets the corpus's text in the same commit) and for work
  the announcer waits on (ingestion indexes a batch before it calls the versions ready).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import transaction

log = logging.getLogger(__name__)

E = TypeVar("E")
Handler = Callable[[Any], None]


@dataclass(frozen=True)
class _Subscription:
    handler: Handler
    immediately: bool


class Registry:
    """The subscribers of one app's events, by event type."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._subscriptions: dict[type, list[_Subscription]] = defaultdict(list)

    def subscribe(self, event_type: type[E], handler: Callable[[E], None], *, immediately: bool = False) -> None:
        subscription = _Subscription(handler, immediately)
        if subscription not in self._subscriptions[event_type]:  # ready() may run twice in tests
            self._subscriptions[event_type].append(subscription)

    def subscribers(self, event_type: type) -> list[Handler]:
        return [s.handler for s in self._subscriptions.get(event_type, [])]

    def announce(self, event: object) -> None:
        for subscription in self._subscriptions.get(type(event), []):
            if subscription.immediately:
                subscription.handler(event)
            else:
                transaction.on_commit(_logged(self.owner, subscription.handler, event))


def _logged(owner: str, handler: Handler, event: object) -> Callable[[], None]:
    def deliver() -> None:
        try:
            handler(event)
        except Exception:  # one subscriber's failure must not cost the others their event
            log.exception("%s event %r: subscriber %s failed", owner, event, getattr(handler, "__qualname__", handler))

    return deliver
