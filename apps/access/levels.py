"""Access levels and the guardian permission codenames behind them. Levels are cumulative:
manage ⊃ change ⊃ view, so a grant of a level assigns that permission and every one below it."""

from __future__ import annotations

from enum import IntEnum

from django.db.models import Model


class Level(IntEnum):
    VIEW = 1
    CHANGE = 2
    MANAGE = 3

    @classmethod
    def parse(cls, name: str) -> Level:
        return cls[name.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


LEVEL_NAMES = [level.label for level in Level]


def model_name_of(model: type[Model] | Model) -> str:
    """The name permission codenames use for a model (`document`). Django sets it on every model
    class it prepares; only Options never attached to a model lack it."""
    name = model._meta.model_name
    if name is None:
        raise TypeError(f"{model!r} is not a prepared Django model: it has no model name.")
    return name


def codename(level: Level, model_name: str) -> str:
    return f"{level.label}_{model_name}"


def codenames_up_to(level: Level, model_name: str) -> list[str]:
    return [codename(lower, model_name) for lower in Level if lower <= level]
