"""Fail-closed tenant scoping: a query over one tenant's data must say which tenant.

Every model that holds a tenant's data (a `tenant` key, or non-null keys leading to one) gets
a `TenantScopedQuerySet` manager as its default, through `TenantOwned`. Its querysets refuse to run,
with `TenantScopeMissing`, unless the query they would send

- is restricted to one tenant, by plain `=` / `IN` conditions on the tenant column that the model's
  own `tenant_path` leads to, joined the way that path joins it: `Document.objects.filter(tenant=t)`,
  `Chunk.objects.filter(version__document__tenant=t)`, `.for_tenant(t)` (which writes that filter),
  `tenant__slug=…`. Conditions combine as logic says: AND takes the tightest, OR needs every branch
  and unites them, NOT pins nothing; `IN` over two tenants is two tenants; or
- hangs off a row the caller already holds (`version.chunks`, a prefetch of them), through a key on
  the model's tenant path, so the rows share that row's tenant. A model with its own tenant column
  (`collection.documents`, `record.reviews`) must still name it; or
- says it crosses tenants, by name: `.across_tenants()`, for the few jobs that are about the
  platform rather than a tenant (the sweeps, reconcile, a task that was handed a row's id, the
  authentication that finds the tenant, a superuser's admin pages).

Around that, a query is refused when it could reach other tenants' rows another way: a part of a
union that is not pinned (an intersection needs one part, a difference its first); a subquery,
anywhere (filter, annotation, ordering, aggregate, update value), that is neither pinned nor bound
to the enclosing query's row or tenant (`document=OuterRef("pk")`, `tenant=OuterRef("tenant")`);
a join that reaches tenant data through a table that is everybody's (`created_by__memberships`);
raw SQL (`raw()`, `extra()`, `RawSQL`), which cannot be read.

The check reads the compiled query when it is about to run (fetch, count, exists, aggregate,
update, delete, iterator, aiterator, explain), not the keyword arguments it was written with, so the
spelling of a filter does not matter. It guards the ORM, not the database: querysets of models that
are not a tenant's data (users, groups, tenants) are not checked, nor is SQL sent past the ORM.

Django's own plumbing keeps working: the base manager (foreign-key access, saving, deleting,
refresh_from_db) is Django's plain one, and uniqueness validation, whose constraints span
tenants by definition, runs unchecked; `dumpdata` (apps/tenants/management) dumps every tenant.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

from django.apps import apps as django_apps
from django.core.exceptions import FieldDoesNotExist, FieldError
from django.db import DEFAULT_DB_ALIAS, models
from django.db.models import Q
from django.db.models.expressions import Case, Col, Func, RawSQL, ResolvedOuterRef, Value
from django.db.models.lookups import Exact, In, Lookup
from django.db.models.sql.datastructures import Join
from django.db.models.sql.query import Query
from django.db.models.sql.where import AND, ExtraWhere, WhereNode


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


def tenant_id_of(obj: models.Model | None) -> Any:
    """The tenant a row belongs to, saved or not, followed along its tenant path in memory (keys
    are read through the base manager); None when unknown or not one tenant's data."""
    from django.core.exceptions import ObjectDoesNotExist

    from .models import Tenant

    if obj is None:
        return None
    path = tenant_path(type(obj))
    if path is None:
        return None
    if path == "pk":
        return obj.pk
    field: Any = obj._meta.get_field(path.split("__", 1)[0])
    if field.related_model is Tenant:
        return getattr(obj, field.attname)
    try:
        return tenant_id_of(getattr(obj, field.name))
    except ObjectDoesNotExist:
        return None


# What a query is restricted to, read from its compiled WHERE: the set of values its tenant column
# is pinned to, or None when some row may escape. In a subquery, `_OUTER_TENANT` stands for "the
# tenant of the enclosing query's row" (`tenant=OuterRef("tenant")`, `version=OuterRef("pk")`).
_OUTER_TENANT = object()


def _pinned_values(where: WhereNode | None, leaf: Any) -> set | None:
    """The values `where` pins a column to (`leaf` reads one condition: its values or None), or None
    when a row may have any value. AND: the tightest child; OR: every child, united; NOT: nothing."""
    if where is None or where.negated:
        return None
    found = []
    for child in where.children:
        found.append(_pinned_values(child, leaf) if isinstance(child, WhereNode) else leaf(child))
    pinned = [values for values in found if values is not None]
    if where.connector == AND:
        return min(pinned, key=len) if pinned else None
    if not found or len(pinned) < len(found):  # OR / XOR: one free branch frees the whole
        return None
    return set().union(*pinned)


def _row_filter(query: Query) -> WhereNode | None:
    """The part of `query`'s conditions that decides which rows are read. Django moves a condition
    on a window function (with whatever it is OR-ed with) to an outer query, after the window has
    run over every row the rest lets through, and one on an aggregate to HAVING: neither pins."""
    return query.where.split_having_qualify()[0]


def _values(condition: Any) -> set | None:
    """The plain values an `=` / `IN` condition compares with (None: not plain values)."""
    if isinstance(condition, Exact):
        values = [condition.rhs]
    elif isinstance(condition, In) and isinstance(condition.rhs, list | tuple | set | frozenset):
        values = list(condition.rhs)
    else:
        return None
    if any(hasattr(value, "resolve_expression") for value in values):
        return None  # another column or a subquery, not a value the caller gave
    try:
        return set(values)
    except TypeError:
        return None


def _path_aliases(query: Query) -> list[tuple[str | None, Any]]:
    """The joins of `query` along its model's tenant path, as (alias, foreign key) per hop, as far
    as the query joins them: [(chunk, version), (version, document), (document, tenant)]."""
    path = tenant_path(query.model)  # type: ignore[arg-type]  # a query always has its model
    if path is None or path == "pk":
        return []
    # The first alias is the base table (Query.base_table, read before the query is set up, would
    # cache None and break it).
    model: Any = query.model
    alias, hops = next(iter(query.alias_map), None), []
    for name in path.split("__"):
        field = model._meta.get_field(name)
        hops.append((alias, field))
        alias = next(
            (
                a
                for a, join in query.alias_map.items()
                if isinstance(join, Join) and join.parent_alias == alias and join.join_field is field
            ),
            None,
        )
        if alias is None:
            break
        model = field.related_model
    return hops


def _tenant_model() -> type[models.Model]:
    from .models import Tenant

    return Tenant


def _is_col(expression: Any, alias: str | None, field: Any) -> bool:
    return isinstance(expression, Col) and expression.alias == alias and expression.target is field


def _tenant_leaf(query: Query, outer: Query | None) -> Any:
    """Reads one condition of `query` as a restriction of its tenant: the tenant column itself
    (`tenant=…`, `tenant_id=…`, `tenant__pk=…`), a unique column of the tenant joined through it
    (`tenant__slug=…`), a key on the path into a pinned subquery (`document__in=<one tenant's
    documents>`), or, in a subquery, a key on the path equal to the same row of the enclosing
    query's path (`tenant=OuterRef("tenant")`, `version=OuterRef("pk")` in a subquery of versions,
    `version=OuterRef("version")` in one of chunks)."""
    hops = _path_aliases(query)
    # The tenant column only when the query joins the whole path to it: where it stops short, the
    # last key it reaches (`version__document_id=…`) is a parent's id, not a tenant.
    complete = bool(hops) and hops[-1][1].related_model is _tenant_model()
    tenant_alias, tenant_fk = hops[-1] if complete else (None, None)
    tenant_joins = {
        alias
        for alias, join in query.alias_map.items()
        if isinstance(join, Join) and join.parent_alias == tenant_alias and join.join_field is tenant_fk
    }

    def tenant_column(lhs: Any) -> str | None:
        """The tenant's column `lhs` is: "pk" (the tenant key, or the tenant's own key joined
        through it), a unique column of the tenant joined through it ("slug"), or None."""
        if tenant_fk is None or not isinstance(lhs, Col):
            return None
        if _is_col(lhs, tenant_alias, tenant_fk):
            return "pk"
        if lhs.alias in tenant_joins and lhs.target.model is tenant_fk.related_model and lhs.target.unique:
            return "pk" if lhs.target.primary_key else lhs.target.attname
        return None

    def leaf(condition: Any) -> set | None:
        if not isinstance(condition, Exact | In):
            return None
        lhs = condition.lhs
        column = tenant_column(lhs)
        if column is not None:
            values = _values(condition)
            if values is not None:
                # Tagged with the tenant's column they name, so that an id and a slug that look
                # alike are not taken for each other.
                return {(column, value if column != "pk" else str(value)) for value in values}
        hop = next((fk for alias, fk in hops if _is_col(lhs, alias, fk)), None)
        if hop is None:
            return None
        if isinstance(condition, In) and isinstance(condition.rhs, Query):
            return _pinned_rows(condition.rhs, hop.related_model, query)
        target = _outer_target(condition, query, outer) if outer is not None else None
        return {_OUTER_TENANT} if target is not None and issubclass(target, hop.related_model) else None

    return leaf


def _pinned_rows(rows: Query, model: type[models.Model], query: Query) -> set | None:
    """The one tenant of the subquery `rows`, when it lists primary keys of `model` pinned to one
    tenant (`document__in=Document.objects.filter(tenant=a)`); else None."""
    selects_pk = len(rows.select) == 1 and getattr(rows.select[0], "target", None) is model._meta.pk
    # A union's select is its first part's: the other parts could list any key.
    if rows.combinator or not (issubclass(rows.model, model) and selects_pk):  # type: ignore[arg-type]
        return None
    fault, tenants = _check(rows, None, query)
    if fault or not tenants or len(tenants) != 1 or _OUTER_TENANT in tenants:
        return None
    return tenants


def _outer_target(condition: Any, inner: Query, outer: Query) -> type[models.Model] | None:
    """The model whose row `condition` compares with, when that row is on the enclosing query's own
    tenant path (its primary key, a key along the path, the tenant column): an OuterRef, before or
    after Django resolves it. None otherwise, or when the enclosing query is not one tenant's."""
    if not isinstance(condition, Exact):
        return None
    outer_model: Any = outer.model
    path = tenant_path(outer_model)
    if path is None or path == "pk":
        return None
    rhs, meta = condition.rhs, outer_model._meta
    if isinstance(rhs, ResolvedOuterRef):
        name = rhs.name  # type: ignore[attr-defined]  # set by F, which it extends
        if name in ("pk", meta.pk.name, meta.pk.attname):
            return outer.model
        model: Any = outer_model
        names = path.split("__")
        for depth, hop in enumerate(names, start=1):
            field = model._meta.get_field(hop)
            prefix = "__".join(names[:depth])
            if name in (prefix, f"{prefix}_id", f"{prefix}__pk", f"{prefix}__id"):
                return field.related_model
            model = field.related_model
        return None
    if isinstance(rhs, Col) and rhs.alias in outer.alias_map and rhs.alias not in inner.alias_map:
        if _is_col(rhs, next(iter(outer.alias_map), None), meta.pk):
            return outer.model
        return next((fk.related_model for alias, fk in _path_aliases(outer) if _is_col(rhs, alias, fk)), None)
    return None


def _hint_leaf(query: Query, parent: models.Model) -> Any:
    """Reads one condition as "hangs off `parent`": a key on the model's tenant path (so the rows
    share the parent's tenant) equal to the parent's primary key, as related managers write it."""
    hops = [(alias, fk) for alias, fk in _path_aliases(query) if isinstance(parent, fk.related_model)]

    def leaf(condition: Any) -> set | None:
        if isinstance(condition, Exact | In) and any(_is_col(condition.lhs, alias, fk) for alias, fk in hops):
            return _values(condition)
        return None

    return leaf


@functools.cache
def _model_of_table() -> dict[str, type[models.Model]]:
    return {m._meta.db_table: m for m in django_apps.get_models(include_auto_created=True) if not m._meta.proxy}


def _is_tenant_data(model: type[models.Model]) -> bool:
    return tenant_path(model) is not None


def _join_fault(query: Query) -> str | None:
    """A join that reaches tenant data through a table that is everybody's (users, groups; tenants
    themselves, unless reached from a row of one), so the joined rows can be any tenant's."""
    from .models import Tenant

    for join in query.alias_map.values():
        if not isinstance(join, Join):
            continue
        joined = _model_of_table().get(join.table_name)
        through = query.alias_map[join.parent_alias]
        via = _model_of_table().get(through.table_name)
        if joined is None or via is None or not _is_tenant_data(joined):
            continue
        from_a_tenants_row = (
            isinstance(through, Join)
            and getattr(through.join_field, "related_model", None) is Tenant
            and getattr(through.join_field, "concrete", False)
        )
        if not _is_tenant_data(via) or (via is Tenant and not from_a_tenants_row):
            return f"it joins {joined._meta.label} through {via._meta.label}, so the joined rows can be any tenant's"
    return None


def _compile_time_join_fault(query: Query) -> str | None:
    """`_join_fault` of the joins Django adds only when it compiles: an ordering across relations
    (`order_by("user__memberships__…")`, the model's own ordering) and select_related. Checked on a
    compiled copy, only when such a join could leave tenant data through a shared table (compiling
    costs about as much as the query: recheck's `select_related("section")` does not need it)."""
    model: Any = query.model
    ordering = query.order_by or (query.get_meta().ordering if query.default_ordering else None) or ()
    paths = [item.lstrip("-").split("__") for item in ordering if isinstance(item, str)]
    paths += list(_select_related_paths(query.select_related))
    if not (
        any(not isinstance(item, str) for item in ordering) or any(_may_leave_tenant_data(model, p) for p in paths)
    ):
        return None
    compiled = query.clone()
    try:
        compiled.get_compiler(DEFAULT_DB_ALIAS).pre_sql_setup()
    except FieldError:
        return None  # a name that does not exist: Django says so when the query runs
    return _join_fault(compiled)


def _select_related_paths(select_related: Any, prefix: tuple = ()) -> Iterator[list[str]]:
    """The relation paths a select_related dict names (True follows forward keys only, which do
    not lead from a shared table into tenant data)."""
    if isinstance(select_related, dict):
        for name, rest in select_related.items():
            yield [*prefix, name]
            yield from _select_related_paths(rest, (*prefix, name))


def _may_leave_tenant_data(model: Any, names: list[str]) -> bool:
    """Whether following `names` from `model` steps from a table that is not one tenant's (or from
    Tenant) into tenant data: the joins `_join_fault` looks at, found from names before compiling."""
    for name in names:
        try:
            field: Any = model._meta.get_field(name)
        except FieldDoesNotExist:
            return False
        target = field.related_model
        if target is None:
            return False
        if _is_tenant_data(target) and tenant_path(model) in (None, "pk"):
            return True
        model = target
    return False


def _scope_fault(query: Query, *, parent: models.Model | None = None, outer: Query | None = None) -> str | None:
    """Why `query` could return, compare with or change rows of more than one tenant; None when it
    cannot. `parent` is the row a related manager was reached from; `outer`, the query a subquery
    sits in."""
    return _check(query, parent, outer)[0]


def _check(query: Query, parent: models.Model | None, outer: Query | None) -> tuple[str | None, set | None]:
    """(the fault, as `_scope_fault`; the tenant values the rows are pinned to, None when that is
    not what holds them: a crossing query, a parent row, data of no one tenant)."""
    if getattr(query, "crosses_tenants", None) or query.is_empty():
        return None, None
    if query.combinator:
        # Every part, whatever the combinator: an intersection or a difference with another
        # tenant's rows compares with them.
        # A part that pins nothing (one of no tenant's table, one that says it crosses tenants)
        # does not switch off the count of the others' tenants; an empty part adds none.
        parts = [_check(part, None, outer) for part in query.combined_queries if not part.is_empty()]
        fault = next((fault for fault, _ in parts if fault), None)
        if fault:
            return fault, None
        tenants = set().union(*(tenants for _, tenants in parts if tenants is not None))
        if len(tenants) > 1:
            return "its parts name several tenants", tenants
        return None, (tenants if parts and all(t is not None for _, t in parts) else None)
    if query.extra or query.extra_tables or query.extra_order_by:
        return "extra() is raw SQL, which the check cannot read", None
    fault = (
        _join_fault(query)
        or _compile_time_join_fault(query)
        or next((f for e in _expressions(query) if (f := _expression_fault(e, query))), None)
    )
    if fault:
        return fault, None
    if tenant_path(query.model) in (None, "pk"):  # type: ignore[arg-type]
        return None, None  # not one tenant's rows (its joins and subqueries are checked above)
    rows = _row_filter(query)
    pinned = _pinned_values(rows, _tenant_leaf(query, outer))
    if pinned is not None and len(pinned) <= 1:
        return None, pinned
    if parent is not None and _held_tenant_row(parent):
        # The parent's key, or (a prefetch) the keys of the rows fetched with it, each of which must
        # be a stored row of the parent's tenant (a prefetch hints only its first row).
        keys = _pinned_values(rows, _hint_leaf(query, parent)) or set()
        if parent.pk in keys:
            parent_model: Any = type(parent)
            if len(keys) == 1 or set(
                parent_model._base_manager.filter(pk__in=keys).values_list(tenant_path(parent_model), flat=True)
            ) == {_tenant_of_key(parent_model, parent.pk)}:
                return None, None
    if pinned is not None:
        return "it names several tenants", pinned
    return ("it names no tenant" if outer is None else "a subquery in it names no tenant"), None


def _held_tenant_row(parent: Any) -> bool:
    """A row of one tenant's data the caller has read or saved (not one made up from an id, and not
    a tenant: tenants are everybody's to list)."""
    return (
        parent is not None
        and tenant_path(type(parent)) not in (None, "pk")
        and not parent._state.adding
        and getattr(parent, "_held_pk", _NOT_HELD) == parent.pk  # not re-keyed since
    )


_NOT_HELD = object()


def _expressions(query: Query) -> Iterator[Any]:
    """Every expression of `query` a subquery or raw SQL can hide in."""
    yield query.where
    yield from query.annotations.values()
    yield from (relation.condition for relation in getattr(query, "_filtered_relations", {}).values())
    yield from (item for item in query.order_by if not isinstance(item, str))
    if isinstance(query.group_by, tuple):
        yield from query.group_by


_RAW_FUNC_PARTS = {"template", "function", "arg_joiner"}


def _expression_fault(expression: Any, query: Query) -> str | None:
    """The fault of the first subquery or raw SQL inside `expression` (part of `query`)."""
    if isinstance(expression, RawSQL | ExtraWhere) or (
        isinstance(expression, Func) and _RAW_FUNC_PARTS & set(expression.extra)
    ):
        return "raw SQL, which the check cannot read"
    if isinstance(expression, models.QuerySet):
        expression = expression.query
    if isinstance(expression, Query):
        return _scope_fault(expression, outer=query)
    if isinstance(expression, Q):  # not resolved yet (a FilteredRelation's condition)
        children = [child[1] if isinstance(child, tuple) else child for child in expression.children]
    elif isinstance(expression, WhereNode):
        children = expression.children
    elif isinstance(expression, Lookup):
        children = [expression.lhs, expression.rhs]
    elif hasattr(expression, "get_source_expressions"):
        children = expression.get_source_expressions()
    else:
        children = []
    for child in children:
        fault = _expression_fault(child, query)
        if fault:
            return fault
    return None


_crossing = contextvars.ContextVar("tenant_scoping_crossing", default=False)


class TenantScopedQuerySet(models.QuerySet):
    # The type: ignores below are Django's private hooks (_chain, _iterator, _update, _hints), which
    # django-stubs does not declare: overriding them is how every path is covered.

    def for_tenant(self, tenant: Any) -> Self:
        """The rows of `tenant` (a Tenant or its id)."""
        return self.filter(**{str(tenant_path(self.model)): tenant})

    def across_tenants(self) -> Self:
        """This query may read or change the rows of every tenant. Say why where you call it."""
        return self._crossing("across_tenants()")

    def _crossing(self, reason: str) -> Self:
        clone = self._chain()  # type: ignore[attr-defined]
        # Kept on the query, so it holds where the query goes: a subquery, a part of a union.
        clone.query.crosses_tenants = reason
        return clone

    def _require_tenant(self, *expressions: Any) -> None:
        if _crossing.get():
            return
        fault = _scope_fault(self.query, parent=self._hints.get("instance"))  # type: ignore[attr-defined]
        if fault is None and not getattr(self.query, "crosses_tenants", None):
            fault = next((f for e in expressions if (f := _expression_fault(e, self.query))), None)
        if fault:
            raise TenantScopeMissing(
                f"A query on {self.model._meta.label} is refused: {fault}. Filter it with "
                f"{tenant_path(self.model)}=… (or .for_tenant(…)), reach it from a row of one tenant, or "
                "say .across_tenants() for a job that is about every tenant."
            )

    # Writes: rows made or moved through a queryset pinned to one tenant stay that tenant's.
    def _one_tenant(self) -> Any:
        """The tenant this queryset is pinned to (by its filter, or the held row it hangs off), or
        None (not pinned, or crossing)."""
        if getattr(self.query, "crosses_tenants", None) or _crossing.get():
            return None
        fault, tenants = _check(self.query, None, None)
        if fault is None and tenants and len(tenants) == 1:
            return next(iter(tenants))
        parent = self._hints.get("instance")  # type: ignore[attr-defined]
        tenant = _tenant_of_key(type(parent), parent.pk) if _held_tenant_row(parent) else None
        return None if tenant is None else ("pk", str(tenant))

    def _require_in_tenant(self, rows: Any, what: str) -> None:
        """Each of `rows` (rows about to be written, or tenant ids) is of the pinned tenant."""
        pinned = self._one_tenant()
        if pinned is None:
            return
        for row in rows:
            tenant = _stored_tenant_of(row) if isinstance(row, models.Model) else row
            if not _is_tenant(pinned, tenant):
                raise TenantScopeMissing(
                    f"{what} through a queryset of one tenant would be another tenant's: "
                    "make it through that tenant's own rows."
                )

    def create(self, **kwargs: Any) -> Any:
        self._require_in_tenant([self.model(**kwargs)], f"A new {self.model._meta.label}")
        return super().create(**kwargs)

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> Any:
        objs = list(objs)
        crossing = getattr(self.query, "crosses_tenants", None) or _crossing.get()
        if (kwargs.get("update_conflicts") or kwargs.get("ignore_conflicts")) and not crossing:
            # A conflict on a key overwrites (or silently keeps) whichever tenant's row holds it.
            raise TenantScopeMissing(
                f"bulk_create on {self.model._meta.label} with conflict handling can touch any tenant's "
                "row that holds the same key: say .across_tenants() and check the keys."
            )
        self._require_in_tenant(objs, f"A new {self.model._meta.label}")
        made = super().bulk_create(objs, *args, **kwargs)
        for row in made:
            row._held_pk = row.pk  # type: ignore[attr-defined]
        return made

    def update_or_create(self, defaults: Any = None, create_defaults: Any = None, **kwargs: Any) -> Any:
        # The update half saves the row found through the base manager: its new keys are checked
        # here as an update's are (the create half goes through create()).
        self._require_kept_in_tenant({k: v for k, v in (defaults or {}).items() if not callable(v)})
        return super().update_or_create(defaults=defaults, create_defaults=create_defaults, **kwargs)

    def _require_kept_in_tenant(self, values: dict[str, Any]) -> None:
        """An update may not move rows into another tenant: a new value of a key to tenant data
        names a row of the tenant the update is pinned to."""
        if getattr(self.query, "crosses_tenants", None) or _crossing.get():
            return
        for name, value in values.items():
            try:
                field: Any = self.model._meta.get_field(name)
            except FieldDoesNotExist:
                continue  # Django's update names the error
            if not (field.many_to_one or field.one_to_one) or tenant_path(field.related_model) is None:
                continue
            key_column, path = field.target_field.attname, tenant_path(field.related_model)
            tenants = []
            for target in _assigned_values(value, self.model._meta.label, name):
                key = getattr(target, key_column) if isinstance(target, models.Model) else target
                if key is not None:  # the stored row's tenant, never a row in memory's
                    rows = field.related_model._base_manager.filter(**{key_column: key})
                    tenants.append(rows.values_list(path, flat=True).first())
            self._require_in_tenant(tenants, f"The {name} set by an update")

    def raw(self, *args: Any, **kwargs: Any) -> Any:
        if not (getattr(self.query, "crosses_tenants", None) or _crossing.get()):
            raise TenantScopeMissing(
                f"raw SQL on {self.model._meta.label} cannot be checked for its tenant: "
                "say .across_tenants().raw(…) and pin the tenant in the SQL."
            )
        return super().raw(*args, **kwargs)

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

    def aiterator(self, chunk_size: int = 2000) -> Any:
        self._require_tenant()
        return super().aiterator(chunk_size)

    def count(self) -> int:
        if self._result_cache is None:
            self._require_tenant()
        return super().count()

    def exists(self) -> bool:
        if self._result_cache is None:
            self._require_tenant()
        return super().exists()

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._require_tenant(*args, *kwargs.values())
        return super().aggregate(*args, **kwargs)

    def update(self, **kwargs: Any) -> int:
        self._require_tenant(*kwargs.values())
        self._require_kept_in_tenant(kwargs)
        return super().update(**kwargs)

    def _update(self, values: Any) -> Any:
        self._require_tenant(*(value for _, _, value in values))
        self._require_kept_in_tenant({field.name: value for field, _, value in values})
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


def _is_tenant(pinned: Any, tenant_id: Any) -> bool:
    """Whether `pinned`, a (column, value) a query pins its tenant with (("pk", "3"), ("slug",
    "acme")), names the tenant `tenant_id`."""
    from .models import Tenant

    if tenant_id is None or not isinstance(pinned, tuple):
        return False
    column, value = pinned
    if column == "pk":
        return value == str(tenant_id)
    return Tenant._base_manager.filter(pk=tenant_id, **{column: value}).exists()


def _tenant_of_key(model: type[models.Model], key: Any) -> Any:
    """The tenant id of the stored row of `model` with primary key `key` (None: no such row): read
    from the database, not from a row in memory, which could be made up."""
    path = tenant_path(model)
    if key is None or path is None:
        return None
    if path == "pk":
        return key
    return model._base_manager.filter(pk=key).values_list(path, flat=True).first()


def _stored_tenant_of(row: models.Model) -> Any:
    """The tenant a row being written will belong to, by the key it will store (its first key
    on the tenant path, looked up in the database), not by a related row held in memory."""
    from .models import Tenant

    path = tenant_path(type(row))
    if path is None:
        return None
    if path == "pk":
        return row.pk
    field: Any = row._meta.get_field(path.split("__", 1)[0])
    key = getattr(row, field.attname)
    return key if field.related_model is Tenant else _tenant_of_key(field.related_model, key)


def _assigned_values(value: Any, label: str, name: str) -> list[Any]:
    """The plain values an update assigns: the value itself, or those of the Value / Case / When
    that bulk_update writes. Any other expression cannot be read before it runs."""
    if not hasattr(value, "resolve_expression"):
        return [value]
    if isinstance(value, Value):
        return [value.value]
    if isinstance(value, Case):
        parts = [when.result for when in value.cases] + [value.default]
        return [v for part in parts for v in _assigned_values(part, label, name)]
    raise TenantScopeMissing(
        f"An update of {label}.{name} to an expression could move rows into another tenant: set it to a row."
    )


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

    # The key a row was read or saved under: only such a row vouches for what hangs off it (a row
    # made up from an id, or re-keyed since, does not).
    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        self._held_pk = self.pk

    @classmethod
    def from_db(cls, *args: Any, **kwargs: Any) -> Any:
        row = super().from_db(*args, **kwargs)
        row._held_pk = row.pk
        return row

    # Uniqueness spans tenants (the database enforces it on the whole table), so its validation
    # looks at every tenant's rows; it answers only "taken or not".
    def _perform_unique_checks(self, unique_checks: Any) -> dict[str, Any]:
        with crossing_tenants():
            return super()._perform_unique_checks(unique_checks)  # type: ignore[misc]

    def validate_constraints(self, exclude: Any = None) -> None:
        with crossing_tenants():
            super().validate_constraints(exclude)
