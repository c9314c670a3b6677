"""Fail-closed tenant scoping: a query over one tenant's data must say which tenant.

Every model that holds a tenant's data (a `tenant` key, or non-null keys leading to one) gets
a `TenantScopedQuerySet` manager as its default, through `TenantOwned`. Its querysets refuse to run,
with `TenantScopeMissing`, unless the query they would send

- is restricted, by an AND of plain `=` / `IN` conditions, on the one tenant column the model's
  `tenant_path` leads to: `Document.objects.filter(tenant=t)`, `Chunk.objects.filter(
  version__document__tenant=t)`, `.for_tenant(t)` (which writes that filter), the admin's
  `tenant__in=[...]`; or
- hangs off a row the caller already holds that is itself one tenant's (`collection.documents`,
  `tenant.documents`, a prefetch of them); or
- says it crosses tenants, by name: `.across_tenants()`, for the few jobs that are about the
  platform rather than a tenant (the sweeps, reconcile, a task that was handed a row's id, the
  authentication that finds the tenant, a superuser's admin pages).

The check reads the compiled query when it is about to run (fetch, count, exists, aggregate,
update, delete, iterator), not the keyword arguments it was written with, so no spelling of a
filter escapes it and a negated or OR-ed tenant condition does not count. Subqueries are bound
by the outer query that embeds them and are not checked on their own.

Django's own plumbing keeps working: the base manager (foreign-key access, saving, deleting,
refresh_from_db) is Django's plain one, and uniqueness validation, whose constraints span
tenants by definition, runs unchecked.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Self

from django.db import models
from django.db.models.lookups import Exact, In
from django.db.models.sql.where import AND, WhereNode

if TYPE_CHECKING:
    from django.db.models import Field


class TenantScopeMissing(RuntimeError):
    """A query over tenant data named no tenant: a programming error, never a user's."""


def tenant_path(model: type[models.Model]) -> str | None:
    """The lookup from `model` to the one tenant its rows belong to ("pk" for Tenant itself), found
    by following foreign keys (a direct `tenant` first, then non-null keys); None when the model is
    not one tenant's data (users and auth groups, or ContentType)."""
    return _tenant_paths(model)


@functools.cache
def _tenant_paths(model: type[models.Model], seen: frozenset = frozenset()) -> str | None:
    from .models import Tenant

    if model is Tenant:
        return "pk"
    if model in seen:
        return None
    forward = sorted(
        (f for f in model._meta.fields if f.is_relation and f.related_model is not None),
        key=lambda f: (f.null, f.name != "tenant"),
    )
    for field in forward:
        if field.related_model is Tenant:
            return field.name
    for field in forward:
        if not field.null:
            rest = _tenant_paths(field.related_model, seen | {model})
            if rest is not None:
                return f"{field.name}__{rest}"
    return None


@functools.cache
def _tenant_column(model: type[models.Model]) -> Field:
    """The foreign key to Tenant at the end of `model`'s tenant path (Document.tenant for Chunk)."""
    path = tenant_path(model)
    if path is None or path == "pk":
        raise TypeError(f"{model.__name__} is not one tenant's data: it cannot be tenant-scoped.")
    *hops, last = path.split("__")
    owner: Any = model
    for hop in hops:
        owner = owner._meta.get_field(hop).related_model
    column = owner._meta.get_field(last)
    assert isinstance(column, models.ForeignKey), column
    return column


def _pins(where: WhereNode, column: Field, joins: dict[str, Any]) -> bool:
    """Whether every row `where` lets through has `column` equal to a value given in the query."""
    if where.negated or (where.connector != AND and len(where.children) > 1):
        return False
    for child in where.children:
        if isinstance(child, WhereNode):
            if _pins(child, column, joins):
                return True
        elif (
            isinstance(child, Exact | In)
            and _names_tenant(child.lhs, column, joins)
            and not hasattr(child.rhs, "resolve_expression")  # a value, not another column or a subquery
        ):
            return True
    return False


def _names_tenant(lhs: Any, column: Field, joins: dict[str, Any]) -> bool:
    """`lhs` is the tenant column itself (tenant=…, tenant_id=…, tenant__pk=…), or a unique column
    of the tenant row joined through it (tenant__slug=…)."""
    target = getattr(lhs, "target", None)
    if target is column:
        return True
    join = joins.get(getattr(lhs, "alias", ""))
    return (
        target is not None
        and target.model is column.related_model
        and target.unique
        and getattr(join, "join_field", None) is column
    )


_crossing = contextvars.ContextVar("tenant_scoping_crossing", default=False)


class TenantScopedQuerySet(models.QuerySet):
    # The type: ignores below are Django's private hooks (_chain, _clone, _iterator, _update,
    # _hints), which django-stubs does not declare: overriding them is how every path is covered.
    _crosses_tenants: str | None = None  # why this query may cross tenants (None: it may not)

    def for_tenant(self, tenant: Any) -> Self:
        """The rows of `tenant` (a Tenant or its id)."""
        return self.filter(**{str(tenant_path(self.model)): tenant})

    def across_tenants(self) -> Self:
        """This query may read or change the rows of every tenant. Say why where you call it."""
        return self._crossing("across_tenants()")

    def _crossing(self, reason: str) -> Self:
        clone = self._chain()  # type: ignore[attr-defined]
        clone._crosses_tenants = reason
        return clone

    def _clone(self) -> Self:
        clone = super()._clone()  # type: ignore[misc]
        clone._crosses_tenants = self._crosses_tenants
        return clone

    def _require_tenant(self) -> None:
        if self._crosses_tenants or _crossing.get() or self.query.is_empty() or self._reached_from_one_tenant():
            return
        if not _pins(self.query.where, _tenant_column(self.model), self.query.alias_map):
            raise TenantScopeMissing(
                f"A query on {self.model._meta.label} names no tenant: filter it with "
                f"{tenant_path(self.model)}=… (or .for_tenant(…)), reach it from a row of one tenant, or "
                "say .across_tenants() for a job that is about every tenant."
            )

    def _reached_from_one_tenant(self) -> bool:
        """A related manager (`collection.documents`, a prefetch of them) lists the rows hanging off
        the row it was reached from, which Django leaves as a hint: when that row is one tenant's
        (or a tenant), so are they. A user's rows are not (`user.memberships`)."""
        parent = self._hints.get("instance")  # type: ignore[attr-defined]
        return parent is not None and tenant_path(type(parent)) is not None

    def __repr__(self) -> str:
        try:
            self._require_tenant()
        except TenantScopeMissing:
            return f"<{type(self).__name__} of {self.model._meta.label} that names no tenant: not run>"
        return super().__repr__()

    # Every way a queryset reaches the database.
    def _fetch_all(self) -> None:
        if self._result_cache is None:
            self._require_tenant()
        super()._fetch_all()

    def _iterator(self, use_chunked_fetch: bool, chunk_size: int | None) -> Iterator[Any]:
        self._require_tenant()
        return super()._iterator(use_chunked_fetch, chunk_size)  # type: ignore[misc]

    def count(self) -> int:
        if self._result_cache is None:
            self._require_tenant()
        return super().count()

    def exists(self) -> bool:
        if self._result_cache is None:
            self._require_tenant()
        return super().exists()

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._require_tenant()
        return super().aggregate(*args, **kwargs)

    def update(self, **kwargs: Any) -> int:
        self._require_tenant()
        return super().update(**kwargs)

    def _update(self, values: Any) -> Any:
        self._require_tenant()
        return super()._update(values)  # type: ignore[misc]

    def delete(self) -> tuple[int, dict[str, int]]:
        self._require_tenant()
        return super().delete()

    def _raw_delete(self, using: Any) -> int:
        self._require_tenant()
        return super()._raw_delete(using)

    def explain(self, *, format: Any = None, **options: Any) -> str:
        self._require_tenant()
        return super().explain(format=format, **options)


@contextmanager
def crossing_tenants() -> Iterator[None]:
    """Every query run inside may cross tenants: for Django's own code that reads a whole table
    (uniqueness checks, an admin list filter's choices) when the caller limits what it returns.
    Say why where you use it; tests/tenants/test_scoping.py lists where that is."""
    token = _crossing.set(True)
    try:
        yield
    finally:
        _crossing.reset(token)


class TenantOwned(models.Model):
    """A model whose rows are one tenant's: its default manager is fail-closed (see the module)."""

    objects = TenantScopedQuerySet.as_manager()

    class Meta:
        abstract = True

    # Uniqueness spans tenants (the database enforces it on the whole table), so its validation
    # looks at every tenant's rows; it answers only "taken or not".
    def _perform_unique_checks(self, unique_checks: Any) -> dict[str, Any]:
        with crossing_tenants():
            return super()._perform_unique_checks(unique_checks)  # type: ignore[misc]

    def validate_constraints(self, exclude: Any = None) -> None:
        with crossing_tenants():
            super().validate_constraints(exclude)
