"""Tenant isolation of the admin site, generated from the admin registry.

Two tenants, acme and globex, each hold an object of every model (the API isolation sweep's
`build_world`: members, groups, keys, collections, documents with versions and history, audit
records with reviews, golden sets with questions and judgements, evaluation runs). Staff members of
acme — one with the admin role, one with the compliance role (the audit trail is theirs) — then go
through every ModelAdmin in `admin.site._registry` and each of its inlines:

* the changelist (plain, with `?_facets=True`, as a popup with `_to_field`, searched for globex's
  word, and filtered by each list filter with globex's ids) shows acme's objects and nothing of
  globex: no marker string (globex's slug, its word "zeppelin", its key prefixes, its file hashes)
  and no link to any of globex's objects; every list filter's choices name none of globex's
  objects;
* the add view and acme's change view render nothing of globex; no foreign-key or many-to-many
  choice (of the form or of an inline row) includes a globex object, and no raw-id widget prints a
  label for a globex id;
* globex's change, history and delete views answer 302 (to the index: "does not exist"), 403 or
  404, showing nothing;
* acme's add and change forms, POSTed with globex's id in each foreign-key, many-to-many and
  inline field in turn (also fields the form does not show, and the inline rows' hidden ids), are
  refused: a field of the form gets an error, and whatever was saved refers to no object of
  another tenant; globex's data is unchanged;
* changelist actions with globex's ids change nothing;
* the autocomplete endpoint, asked through every relation of every model, returns none of
  globex's objects.

A model registered later is covered without a line here; one registered with a plain ModelAdmin
(or an inline that is not a scoped one) fails `test_every_admin_uses_the_scoping_base`. The only
exemptions are explicit: Django's user and group pages, which are for superusers only (checked
closed to staff below).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models import F
from django.forms.models import InlineForeignKeyField, ModelChoiceField
from django.test import Client
from django.urls import reverse

from apps.evaluation.models import GoldenQuestion, Judgement
from apps.tenants import services as tenants
from apps.tenants.admin import SuperuserOnly, TenantScopedAdmin, TenantScopedRawIdWidget, TenantScoping, tenant_path
from apps.tenants.models import Membership, Role
from tests.hardening.test_tenant_isolation import World, build_world, data_built_once

pytestmark = pytest.mark.django_db

User = get_user_model()
REGISTRY = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label_lower)
# Explicit exemptions: pages only a superuser reaches (test_superuser_only_pages_are_closed_to_staff).
SUPERUSER_ONLY = [model for model, model_admin in REGISTRY if isinstance(model_admin, SuperuserOnly)]
SCOPED = [model for model, model_admin in REGISTRY if model not in SUPERUSER_ONLY]
PERSONAS = ("admin", "compliance")
GONE = (302, 403, 404)  # 302: Django's "does not exist" redirect to the index


@pytest.fixture(autouse=True)
def _fresh_search_index():
    """Replaces tests/conftest.py's per-test index: this module's is built once, in `setup`."""
    yield


# =========================================================================== the two tenants
@dataclass
class Setup:
    acme: World
    globex: World
    clients: dict[str, Client]  # persona → a signed-in staff member of acme
    markers: list[str]  # lower case: none may appear on a page acme's staff sees
    links: list[str]  # the admin URLs of globex's objects


def _staff(world: World, role: str) -> User:
    user = User.objects.create_user(f"acme-{role}-staffer", password="pw-for-tests-only", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["tenants", "documents", "evaluation", "audit"])
    )
    tenants.membership_add(tenant=world.tenant, user=user, username=f"{role}-staffer", role=role)
    return user


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def pks_of(model, world: World) -> list:
    """The primary keys of the rows of `model` that are `world`'s alone."""
    path = tenant_path(model)
    manager = model._default_manager
    if path is not None:
        rows = manager.filter(**{path: world.tenant.pk})
    elif model is User:
        rows = manager.filter(pk__in=Membership.objects.filter(tenant=world.tenant).values("user_id")).exclude(
            memberships__tenant__in=Membership.objects.exclude(tenant=world.tenant).values("tenant_id")
        )
    elif model is Group:
        rows = manager.filter(tenant_group__tenant=world.tenant)
    else:
        return []
    return sorted(rows.values_list("pk", flat=True))


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture(scope="module")
def setup(django_db_setup, django_db_blocker, tmp_path_factory):
    with data_built_once(django_db_blocker, tmp_path_factory, "admin-isolation"):
        acme, globex = build_world("acme", "anvil"), build_world("globex", "zeppelin")
        clients = {"admin": _client(_staff(acme, Role.ADMIN)), "compliance": _client(_staff(acme, Role.COMPLIANCE))}
        links = [admin_url(model, "change", pk) for model in admin.site._registry for pk in pks_of(model, globex)]
        assert cross_tenant_references() == [], "the worlds must start clean"
        yield Setup(
            acme=acme, globex=globex, clients=clients, markers=[m.lower() for m in globex.markers()], links=links
        )


def leaks(setup: Setup, text: str, sent: str = "") -> list[str]:
    """globex's markers and links found in `text`; a search term the request `sent` is echoed by
    the page (the search box), so that one marker is not looked for (the other variant covers it)."""
    lowered = text.lower()
    return [m for m in setup.markers if m in lowered and m != sent.lower()] + [
        link for link in setup.links if link in text
    ]


def cross_tenant_references() -> list[str]:
    """Rows that refer to an object of another tenant than their own, anywhere in the database."""
    found = []
    for model in apps.get_models():
        own = tenant_path(model)
        if own is None or own == "pk":
            continue
        for field in model._meta.fields:
            if not field.is_relation or tenant_path(field.related_model) is None:
                continue
            rest = tenant_path(field.related_model)
            other = field.name if rest == "pk" else f"{field.name}__{rest}"
            if other == own:
                continue
            bad = model._base_manager.filter(**{f"{field.name}__isnull": False}).exclude(**{own: F(other)})
            found += [f"{model._meta.label}#{pk}.{field.name}" for pk in bad.values_list("pk", flat=True)]
    return found


def fingerprint(world: World) -> str:
    """Everything of one tenant, hashed: equal before and after means nothing of it changed."""
    digest = hashlib.sha256()
    for model in sorted(apps.get_models(), key=lambda m: m._meta.label):
        pks = pks_of(model, world)
        digest.update(
            repr((model._meta.label, list(model._base_manager.filter(pk__in=pks).order_by("pk").values()))).encode()
        )
    return digest.hexdigest()


def acme_object(model, setup: Setup):
    pks = pks_of(model, setup.acme)
    assert pks, f"the world has no acme {model._meta.label}: add one to build_world"
    return model._base_manager.get(pk=pks[0])


def globex_value(model, setup: Setup, to_field: str | None = None):
    pks = pks_of(model, setup.globex)
    assert pks, f"the world has no globex {model._meta.label}: add one to build_world"
    obj = model._base_manager.get(pk=pks[0])
    return getattr(obj, to_field) if to_field else obj.pk


# =========================================================================== forms as a browser posts them
class FormParser(HTMLParser):
    """The fields of the admin's object form, with the values a browser would submit."""

    def __init__(self, form_id: str):
        super().__init__()
        self.form_id, self.inside, self.data = form_id, False, []
        self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside or "__prefix__" in (a.get("name") or ""):
            return
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("submit", "button", "file", "image", "reset"):
                return
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.data.append((a["name"], a.get("value", "on")))
            else:
                self.data.append((a["name"], a.get("value") or ""))
        elif tag == "select" and a.get("name"):
            self._select = a["name"]
        elif tag == "option" and self._select and "selected" in a:
            self.data.append((self._select, a.get("value", "")))
        elif tag == "textarea" and a.get("name"):
            self._textarea = [a["name"], ""]

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.data.append((self._textarea[0], self._textarea[1].lstrip("\n")))
            self._textarea = None


def form_data(html: str, model) -> dict[str, list[str]]:
    parser = FormParser(f"{model._meta.model_name}_form")
    parser.feed(html)
    data: dict[str, list[str]] = {}
    for name, value in parser.data:
        data.setdefault(name, []).append(value)
    return data


@dataclass
class Slot:
    """A name the form may post and the globex value to put in it."""

    name: str
    value: object
    form: object | None  # the bound form it belongs to (None: not in any form)
    field: str
    inline: tuple[str, int] | None = None  # (formset prefix, row) for an inline row

    @property
    def expects_error(self) -> bool:
        if self.form is None or self.field not in self.form.fields:
            return False  # not a field of the form: must be ignored (checked by the database)
        formfield = self.form.fields[self.field]
        new_row = self.inline is not None and self.inline[1] >= self.form_initial_count
        # An inline row's parent key cannot change a new, otherwise untouched row: it is skipped whole.
        return not (new_row and isinstance(formfield, InlineForeignKeyField))

    form_initial_count: int = 0


def relation_fields(model):
    return [*(f for f in model._meta.fields if f.is_relation), *model._meta.many_to_many]


def slots(response, model, setup: Setup) -> list[Slot]:
    """Every foreign-key, many-to-many and inline field (and inline row id) of the page, shown or not."""
    found = []
    form = response.context["adminform"].form
    for field in relation_fields(model):
        found.append(Slot(field.name, globex_value(field.related_model, setup, _to_field(field)), form, field.name))
    for inline_formset in response.context["inline_admin_formsets"]:
        formset = inline_formset.formset
        inline_model = formset.model
        for row, row_form in enumerate(formset.forms):
            names = [(f.name, f.related_model, _to_field(f)) for f in relation_fields(inline_model)]
            names.append((inline_model._meta.pk.name, inline_model, None))
            for name, related, to_field in names:
                found.append(
                    Slot(
                        f"{formset.prefix}-{row}-{name}",
                        globex_value(related, setup, to_field),
                        row_form,
                        name,
                        inline=(formset.prefix, row),
                        form_initial_count=formset.initial_form_count(),
                    )
                )
    return found


def _to_field(field) -> str | None:
    if field.many_to_many:
        return None
    return field.target_field.attname


def errors_for(response, slot: Slot) -> bool:
    if response.status_code != 200 or response.context is None:
        return False
    if slot.inline is None:
        form = response.context["adminform"].form
        return slot.field in form.errors or bool(form.non_field_errors())
    prefix, row = slot.inline
    for inline_formset in response.context["inline_admin_formsets"]:
        if inline_formset.formset.prefix == prefix:
            row_form = inline_formset.formset.forms[row]
            return slot.field in row_form.errors or bool(row_form.non_field_errors())
    return False


def check_form_choices(response, setup: Setup, where: str) -> list[str]:
    """No choice of any model field of the page's forms names a globex object; no raw-id widget
    prints a label for a globex id."""
    problems = []
    forms_ = [("form", response.context["adminform"].form)]
    for inline_formset in response.context["inline_admin_formsets"]:
        forms_ += [(f"{inline_formset.formset.prefix}-{i}", f) for i, f in enumerate(inline_formset.formset.forms)]
        forms_.append((f"{inline_formset.formset.prefix}-empty", inline_formset.formset.empty_form))
    for label, form in forms_:
        for name, field in form.fields.items():
            if not isinstance(field, ModelChoiceField):
                continue
            foreign = set(pks_of(field.queryset.model, setup.globex)) & set(field.queryset.values_list("pk", flat=True))
            if foreign:
                problems.append(
                    f"{where} {label}.{name} offers globex's {field.queryset.model._meta.label} {sorted(foreign)}"
                )
            widget = getattr(field.widget, "widget", field.widget)
            if hasattr(widget, "label_and_url_for_value"):
                if not isinstance(widget, TenantScopedRawIdWidget) and not widget.__class__.__name__.startswith(
                    "ManyToMany"
                ):
                    problems.append(f"{where} {label}.{name}: raw-id widget {type(widget).__name__} is not scoped")
                for pk in pks_of(field.queryset.model, setup.globex)[:3]:
                    if widget.label_and_url_for_value(pk) != ("", ""):
                        problems.append(f"{where} {label}.{name}: the raw-id widget labels globex's id {pk}")
    return problems


# =========================================================================== the tests
def test_every_admin_uses_the_scoping_base():
    problems = []
    for model, model_admin in REGISTRY:
        if model in SUPERUSER_ONLY:
            continue
        if not isinstance(model_admin, TenantScopedAdmin):
            problems.append(
                f"{model._meta.label}: {type(model_admin).__name__} must subclass apps.tenants.admin.TenantScopedAdmin"
            )
        if tenant_path(model) is None:
            problems.append(f"{model._meta.label}: no path to a tenant (tenant_path)")
        for inline in model_admin.inlines:
            if not issubclass(inline, TenantScoping):
                problems.append(
                    f"{model._meta.label}: inline {inline.__name__} must be a TenantScopedTabularInline/StackedInline"
                )
            if tenant_path(inline.model) is None:
                problems.append(f"{inline.model._meta.label} (inline): no path to a tenant")
    assert problems == []
    assert len(SCOPED) >= 10, "the registry looks empty: is admin autodiscovery running?"


@pytest.mark.parametrize("model", SUPERUSER_ONLY, ids=lambda m: m._meta.label_lower)
def test_superuser_only_pages_are_closed_to_staff(setup, model):
    obj = model._default_manager.get(pk=globex_value(model, setup))
    for persona, client in setup.clients.items():
        for url in (admin_url(model, "changelist"), admin_url(model, "add"), admin_url(model, "change", obj.pk)):
            response = client.get(url)
            assert response.status_code == 403, (persona, url, response.status_code)


def _visible(client, model) -> bool:
    status = client.get(admin_url(model, "changelist")).status_code
    assert status in (200, 403), status
    return status == 200


@pytest.mark.parametrize("model", SCOPED, ids=lambda m: m._meta.label_lower)
def test_changelist_filters_and_search_show_only_acme(setup, model):
    seen_by = []
    for persona, client in setup.clients.items():
        if not _visible(client, model):
            continue
        seen_by.append(persona)
        base = admin_url(model, "changelist")
        page = client.get(base)
        own = acme_object(model, setup)
        assert admin_url(model, "change", own.pk) in page.content.decode(), f"{persona}: acme's object is not listed"
        variants = [
            "?_facets=True",
            f"?_popup=1&_to_field={model._meta.pk.attname}",
            f"?q={setup.globex.word}",
            f"?q={setup.globex.tenant.slug}&_facets=True",
        ]
        problems = []
        for spec in page.context["cl"].filter_specs:
            for choice in spec.choices(page.context["cl"]):
                if leaks(setup, str(choice.get("display"))):
                    problems.append(f"{persona}: filter {spec.title!r} offers {choice.get('display')!r}")
            remote = getattr(getattr(spec, "field", None), "related_model", None)
            if remote is not None and hasattr(spec, "lookup_choices"):
                foreign = {str(pk) for pk in pks_of(remote, setup.globex)} & {
                    str(value) for value, _ in spec.lookup_choices
                }
                if foreign:
                    problems.append(
                        f"{persona}: filter {spec.title!r} lists globex's {remote._meta.label} {sorted(foreign)}"
                    )
                values = pks_of(remote, setup.globex)[:2]
            else:
                name = getattr(spec, "parameter_name", "")
                named = next((m for m in apps.get_models() if m._meta.model_name == name), model)
                values = [setup.globex.tenant.pk, *pks_of(named, setup.globex)[:2]]
            for parameter in spec.expected_parameters()[:1]:
                variants += [f"?{urlencode({parameter: value})}" for value in values]
        for variant in variants:
            response = client.get(base + variant, follow=True)
            assert response.status_code == 200, (persona, variant, response.status_code)
            sent = next(
                (
                    setup.globex.word if setup.globex.word in variant else setup.globex.tenant.slug
                    for _ in [0]
                    if "q=" in variant
                ),
                "",
            )
            if found := leaks(setup, response.content.decode(), sent):
                problems.append(f"{persona} {variant}: {found}")
        actions = (
            [value for value, _ in page.context["action_form"].fields["action"].choices if value]
            if page.context.get("action_form")
            else []
        )
        before = fingerprint(setup.globex)
        for action in actions:
            response = client.post(
                base, {"action": action, "index": 0, "_selected_action": pks_of(model, setup.globex)}, follow=True
            )
            if found := leaks(setup, response.content.decode()):
                problems.append(f"{persona} action {action}: {found}")
        assert fingerprint(setup.globex) == before, "an action changed globex's data"
        assert problems == []
    assert seen_by, f"no acme staff member sees {model._meta.label}: the test proves nothing"


@pytest.mark.parametrize("model", SCOPED, ids=lambda m: m._meta.label_lower)
def test_add_and_change_views_offer_nothing_of_globex(setup, model):
    checked = 0
    for persona, client in setup.clients.items():
        if not _visible(client, model):
            continue
        own = acme_object(model, setup)
        urls = [admin_url(model, "add"), admin_url(model, "change", own.pk)]
        for url in urls:
            response = client.get(url)
            assert response.status_code in (200, 403), (persona, url, response.status_code)
            if response.status_code == 403:
                continue
            checked += 1
            assert leaks(setup, response.content.decode()) == [], (persona, url)
            if "adminform" in response.context:
                assert check_form_choices(response, setup, f"{persona} {url}") == []
        theirs = globex_value(model, setup)
        for view in ("change", "history", "delete"):
            response = client.get(admin_url(model, view, theirs))
            assert response.status_code in GONE, (persona, view, response.status_code)
            if response.status_code == 302:
                assert response.url.rstrip("/").endswith("/admin"), response.url  # "does not exist" → the index
            assert leaks(setup, response.content.decode()) == [], (persona, view)
    assert checked, f"no acme staff member opens {model._meta.label}"


@pytest.mark.parametrize("model", SCOPED, ids=lambda m: m._meta.label_lower)
def test_posting_globex_ids_is_refused(setup, model):
    problems = []
    for persona, client in setup.clients.items():
        if not _visible(client, model):
            continue
        own = acme_object(model, setup)
        for url in (admin_url(model, "add"), admin_url(model, "change", own.pk)):
            page = client.get(url)
            if page.status_code != 200 or "adminform" not in page.context:
                continue
            base = form_data(page.content.decode(), model)
            for slot in slots(page, model, setup):
                before = fingerprint(setup.globex)
                data = {**base, slot.name: [str(slot.value)], "_save": ["Save"]}
                response = client.post(url, data)
                where = f"{persona} POST {url} {slot.name}={slot.value}"
                if response.status_code == 403:
                    continue  # not allowed to save at all (a view-only page)
                if slot.expects_error and not errors_for(response, slot):
                    problems.append(f"{where}: accepted (status {response.status_code})")
                if found := leaks(setup, response.content.decode()):
                    problems.append(f"{where}: shows {found}")
                if crossed := cross_tenant_references():
                    problems.append(f"{where}: saved {crossed}")
                if fingerprint(setup.globex) != before:
                    problems.append(f"{where}: changed globex's data")
    assert problems == []


def _relations():
    for source in sorted(apps.get_models(), key=lambda m: m._meta.label):
        # Forward relations: the ones an autocomplete widget is built for (Django's view raises on a
        # reverse one: a server error, not a leak).
        for field in [*source._meta.fields, *source._meta.many_to_many]:
            if field.is_relation:
                remote = field.remote_field.model
                if remote in admin.site._registry and admin.site._registry[remote].search_fields:
                    yield source, field


def test_autocomplete_returns_nothing_of_globex(setup):
    answered = 0
    problems = []
    for source, field in _relations():
        remote = field.remote_field.model
        foreign = {str(v) for v in pks_of(remote, setup.globex)}
        to_field = getattr(field.remote_field, "field_name", None)
        if to_field and to_field != remote._meta.pk.name:
            foreign = {
                str(v)
                for v in remote._default_manager.filter(pk__in=pks_of(remote, setup.globex)).values_list(
                    to_field, flat=True
                )
            }
        for persona, client in setup.clients.items():
            for term in ("", setup.globex.word, setup.globex.tenant.slug):
                query = {
                    "app_label": source._meta.app_label,
                    "model_name": source._meta.model_name,
                    "field_name": field.name,
                    "term": term,
                }
                response = client.get(reverse("admin:autocomplete"), query)
                where = f"{persona} {source._meta.label}.{field.name} term={term!r}"
                if response.status_code in (403, 404):
                    continue
                assert response.status_code == 200, (where, response.status_code)
                answered += 1
                results = response.json()["results"]
                if {r["id"] for r in results} & foreign or leaks(setup, response.content.decode()):
                    problems.append(f"{where}: {results}")
    assert problems == []
    assert answered, "no autocomplete answered: the test proves nothing"


# =========================================================================== the reviewer's reproductions
def test_the_reviewed_paths(setup):
    """Issue 15, item 4, each reproduction: the golden-set add form's collections, the golden-set
    filters of questions and runs, a judgement on globex's document in a new question, the raw-id
    label of a typed globex id."""
    client = setup.clients["admin"]
    acme, globex = setup.acme, setup.globex
    add_set = client.get(admin_url(apps.get_model("evaluation", "GoldenSet"), "add"))
    assert acme.collection.name in add_set.content.decode() and globex.collection.name not in add_set.content.decode()
    for model in ("GoldenQuestion", "EvaluationRun"):
        page = client.get(admin_url(apps.get_model("evaluation", model), "changelist")).content.decode()
        assert acme.golden_set.name in page and globex.golden_set.name not in page
    form = {
        "golden_set": acme.golden_set.pk,
        "text": "probe question",
        "reference_answer": "",
        "external_id": "",
        "judgements-TOTAL_FORMS": "1",
        "judgements-INITIAL_FORMS": "0",
        "judgements-0-document": globex.document.pk,
        "judgements-0-grade": "1",
    }
    response = client.post(admin_url(GoldenQuestion, "add"), form)
    assert response.status_code == 200
    assert not GoldenQuestion.objects.across_tenants().filter(text="probe question").exists()
    assert globex.document.title not in response.content.decode()  # the raw-id label of the typed id
    accepted = client.post(admin_url(GoldenQuestion, "add"), {**form, "judgements-0-document": acme.document.pk})
    assert accepted.status_code == 302, accepted.context and accepted.context["adminform"].form.errors
    assert Judgement.objects.across_tenants().get(question__text="probe question").document == acme.document


def test_staff_of_two_tenants_cannot_join_them(setup):
    """Someone who administers both tenants (or a superuser) still may not judge acme's question by
    globex's document, or give acme's golden set globex's collection: the form checks that every
    object it refers to is of one tenant, for a new object too."""
    acme, globex = setup.acme, setup.globex
    both = User.objects.create_user("both-staffer", is_staff=True)
    both.user_permissions.set(Permission.objects.filter(content_type__app_label="evaluation"))
    for world in (acme, globex):
        tenants.membership_add(tenant=world.tenant, user=both, username="both-staffer", role=Role.ADMIN)
    root = User.objects.create_superuser("root-staffer", password="pw-for-tests-only")
    for user in (both, root):
        client = _client(user)
        question = {
            "golden_set": acme.golden_set.pk,
            "text": f"crossed by {user.username}",
            "reference_answer": "",
            "external_id": "",
            "judgements-TOTAL_FORMS": "1",
            "judgements-INITIAL_FORMS": "0",
            "judgements-0-document": globex.document.pk,
            "judgements-0-grade": "1",
        }
        response = client.post(admin_url(GoldenQuestion, "add"), question)
        assert response.status_code == 200, user
        assert "another tenant" in str(response.context["inline_admin_formsets"][0].formset.forms[0].errors)
        assert not GoldenQuestion.objects.across_tenants().filter(text=question["text"]).exists()
        golden_set = {
            "tenant": acme.tenant.pk,
            "name": f"crossed set {user.username}",
            "description": "",
            "collection": globex.collection.pk,
            "questions-TOTAL_FORMS": "0",
            "questions-INITIAL_FORMS": "0",
        }
        response = client.post(admin_url(apps.get_model("evaluation", "GoldenSet"), "add"), golden_set)
        assert response.status_code == 200 and "collection" in response.context["adminform"].form.errors, user
        # Both tenants' golden sets are theirs to filter by.
        page = client.get(admin_url(GoldenQuestion, "changelist")).content.decode()
        assert acme.golden_set.name in page and globex.golden_set.name in page
