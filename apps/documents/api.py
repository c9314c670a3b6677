"""The documents API for tenant apps: collections, documents, versions, lifecycle, grants.

Scopes gate the kind of call (documents:read / documents:write); per-object access (view, change,
manage) is checked through apps/access/checks.py; lookups go through selectors that only ever
return what the caller may see."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.fields import empty
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils import html
from rest_framework.views import APIView

from apps.access.grants import Grant, grants_list
from apps.access.levels import LEVEL_NAMES, Level
from apps.core.exceptions import NotFound
from apps.core.pagination import paginated_response, paginated_schema
from apps.core.parsers import JSONParser
from apps.core.serializers import StrictInputSerializer, StringField
from apps.tenants import selectors as tenant_selectors
from apps.tenants.actors import Actor
from apps.tenants.models import Scope
from apps.tenants.permissions import tenant_context

from . import selectors, services
from .models import ChunkStrategy, Document, DocumentState
from .rules import (
    Action,
    check_collection,
    check_collection_create,
    check_document,
    check_document_create,
    readable_versions,
)
from .uploads import SUPPORTED_MEDIA_TYPES

if TYPE_CHECKING:
    from django.contrib.auth.models import Group, User

READ_WRITE = {
    "GET": Scope.DOCUMENTS_READ,
    "POST": Scope.DOCUMENTS_WRITE,
    "PUT": Scope.DOCUMENTS_WRITE,
    "PATCH": Scope.DOCUMENTS_WRITE,
    "DELETE": Scope.DOCUMENTS_WRITE,
}


# --------------------------------------------------------------------------- output shapes
class CollectionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = StringField()
    description = StringField()
    chunk_size = serializers.IntegerField()
    chunk_overlap = serializers.IntegerField()
    chunk_strategy = StringField()
    created_at = serializers.DateTimeField()


class VersionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    original_filename = StringField()
    media_type = StringField()
    size = serializers.IntegerField()
    sha256 = StringField()
    change_note = StringField()
    created_at = serializers.DateTimeField()
    status = StringField()
    status_reason = StringField()
    progress_done = serializers.IntegerField()
    progress_total = serializers.IntegerField()
    processing_started_at = serializers.DateTimeField(allow_null=True)
    processing_finished_at = serializers.DateTimeField(allow_null=True)
    purged_at = serializers.DateTimeField(allow_null=True)
    publish_when_ready = serializers.BooleanField()


class DocumentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    collection = serializers.IntegerField(source="collection_id")
    title = StringField()
    external_id = StringField()
    author = StringField()
    category = StringField()
    tags = serializers.ListField(child=StringField())
    effective_date = serializers.DateField(allow_null=True)
    source_url = StringField()
    state = StringField()
    published_version = VersionOutputSerializer(allow_null=True)
    has_own_grants = serializers.BooleanField()
    retention_until = serializers.DateField(allow_null=True)
    legal_hold = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    purged_at = serializers.DateTimeField(allow_null=True)


class EventOutputSerializer(serializers.Serializer):
    action = StringField()
    version = serializers.IntegerField(source="version.number", allow_null=True, default=None)
    actor = serializers.SerializerMethodField()
    reason = StringField()
    details = serializers.DictField()
    created_at = serializers.DateTimeField()

    def get_actor(self, event) -> str | None:
        return selectors.event_actor_label(event)


class GrantSerializer(serializers.Serializer):
    user = StringField(required=False, help_text="A tenant username.")
    group = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1, help_text="A tenant group id.")
    api_key = StringField(required=False, help_text="An API key prefix: grants the key's own reads.")
    level = serializers.ChoiceField(choices=LEVEL_NAMES)

    def validate(self, data):
        named = [k for k in ("user", "group", "api_key") if k in data]
        if len(named) != 1:
            raise serializers.ValidationError("Name exactly one of user, group or api_key.")
        return data


class GrantsInputSerializer(serializers.Serializer):
    grants = GrantSerializer(many=True)


class ReasonSerializer(serializers.Serializer):
    reason = StringField(required=False, default="", allow_blank=True, max_length=2000)


# --------------------------------------------------------------------------- grants helpers
def _grants_out(context, obj) -> list[dict]:
    from django.contrib.auth.models import Group

    out = []
    for grant in grants_list(obj):
        if isinstance(grant.principal, Group):
            out.append({"group": grant.principal.tenant_group.pk, "level": grant.level.label})
        elif hasattr(grant.principal, "api_key"):
            out.append({"api_key": grant.principal.api_key.prefix, "level": grant.level.label})
        else:
            membership = grant.principal.memberships.filter(tenant=context.tenant).first()
            out.append({"user": membership.username if membership else None, "level": grant.level.label})
    return out


def _grants_in(context, data: list[dict]) -> list[Grant]:
    grants = []
    for item in data:
        level = Level.parse(item["level"])
        principal: User | Group
        if "user" in item:
            principal = tenant_selectors.membership_get(tenant=context.tenant, username=item["user"]).user
        elif "group" in item:
            principal = tenant_selectors.group_get(tenant=context.tenant, group_id=item["group"]).auth_group
        else:
            principal = tenant_selectors.api_key_get(tenant=context.tenant, prefix=item["api_key"]).service_user
        grants.append(Grant(principal, level))
    return grants


_grants_schema: serializers.ListSerializer[Any] = serializers.ListSerializer(child=GrantSerializer())


# --------------------------------------------------------------------------- collections
class CollectionListCreateView(APIView):
    required_scopes = READ_WRITE

    class CollectionCreateSerializer(serializers.Serializer):
        name = StringField(max_length=200)
        description = StringField(required=False, default="", allow_blank=True)
        chunk_size = serializers.IntegerField(
            required=False, min_value=16, max_value=254, help_text="Model tokens per chunk (default 200)."
        )
        chunk_overlap = serializers.IntegerField(
            required=False, min_value=0, max_value=127, help_text="Tokens shared by neighbours (default 40)."
        )
        chunk_strategy = serializers.ChoiceField(required=False, choices=ChunkStrategy.values)

    @extend_schema(
        operation_id="collections_list", responses=paginated_schema(CollectionOutputSerializer), tags=["collections"]
    )
    def get(self, request: Request) -> Response:
        collections = selectors.collection_list(context=tenant_context(request))
        return paginated_response(
            request=request, view=self, queryset=collections, serializer_class=CollectionOutputSerializer
        )

    @extend_schema(
        request=CollectionCreateSerializer, responses={201: CollectionOutputSerializer}, tags=["collections"]
    )
    def post(self, request: Request) -> Response:
        context = tenant_context(request)
        check_collection_create(context)
        data = self.CollectionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        collection = services.collection_create(tenant=context.tenant, **data.validated_data)
        return Response(CollectionOutputSerializer(collection).data, status=status.HTTP_201_CREATED)


class CollectionDetailView(APIView):
    required_scopes = READ_WRITE

    class CollectionUpdateSerializer(serializers.Serializer):
        name = StringField(max_length=200, required=False)
        description = StringField(required=False, allow_blank=True)

    @extend_schema(responses=CollectionOutputSerializer, tags=["collections"])
    def get(self, request: Request, collection_id: int) -> Response:
        collection = selectors.collection_get(context=tenant_context(request), collection_id=collection_id)
        return Response(CollectionOutputSerializer(collection).data)

    @extend_schema(request=CollectionUpdateSerializer, responses=CollectionOutputSerializer, tags=["collections"])
    def patch(self, request: Request, collection_id: int) -> Response:
        context = tenant_context(request)
        collection = selectors.collection_get(context=context, collection_id=collection_id)
        check_collection(context, collection, Action.UPDATE)
        data = self.CollectionUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        collection = services.collection_update(collection=collection, **data.validated_data)
        return Response(CollectionOutputSerializer(collection).data)

    @extend_schema(responses={204: None}, tags=["collections"])
    def delete(self, request: Request, collection_id: int) -> Response:
        context = tenant_context(request)
        collection = selectors.collection_get(context=context, collection_id=collection_id)
        check_collection(context, collection, Action.LIFECYCLE)
        services.collection_delete(collection=collection)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CollectionGrantsView(APIView):
    required_scopes = READ_WRITE

    @extend_schema(responses=_grants_schema, tags=["collections"], summary="Grants on the collection")
    def get(self, request: Request, collection_id: int) -> Response:
        context = tenant_context(request)
        collection = selectors.collection_get(context=context, collection_id=collection_id)
        check_collection(context, collection, Action.GRANTS)
        return Response(_grants_out(context, collection))

    @extend_schema(
        request=GrantsInputSerializer,
        responses=_grants_schema,
        tags=["collections"],
        summary="Replace the collection's grants",
    )
    def put(self, request: Request, collection_id: int) -> Response:
        context = tenant_context(request)
        collection = selectors.collection_get(context=context, collection_id=collection_id)
        check_collection(context, collection, Action.GRANTS)
        data = GrantsInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        grants = _grants_in(context, data.validated_data["grants"])
        services.grants_replace(obj=collection, grants=grants, actor=context.actor)
        return Response(_grants_out(context, collection))


# --------------------------------------------------------------------------- documents
class DocumentMetadataSerializer(serializers.Serializer):
    """The document fields a caller may set; every one optional (PATCH semantics)."""

    title = StringField(max_length=500, required=False)
    external_id = StringField(max_length=500, required=False, allow_blank=True, help_text="Your own id for it.")
    author = StringField(max_length=200, required=False, allow_blank=True)
    category = StringField(max_length=100, required=False, allow_blank=True)
    tags = serializers.ListField(child=StringField(max_length=100), required=False)
    effective_date = serializers.DateField(required=False, allow_null=True)
    source_url = serializers.URLField(max_length=1000, required=False, allow_blank=True)
    retention_until = serializers.DateField(
        required=False,
        allow_null=True,
        help_text=(
            "Purge is refused before this date. Set only by the owner or compliance role, or a key with "
            "documents:retention."
        ),
    )
    legal_hold = serializers.BooleanField(
        required=False,
        help_text=(
            "Delete and purge are refused while set. Set only by the owner or compliance role, or a key "
            "with documents:retention."
        ),
    )

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if html.is_html_input(data):
            # A form body (multipart) simply leaves out what it does not send, and DRF reads an
            # absent checkbox as false and an absent list as empty: only what was really sent may
            # change a document (an absent legal_hold must not lift a hold, nor ask for `manage`).
            values = {k: v for k, v in values.items() if k in data or self.fields[k].default is not empty}
        return values


class DocumentListCreateView(APIView):
    required_scopes = READ_WRITE
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    class DocumentFilterSerializer(serializers.Serializer):
        collection = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
        state = serializers.ChoiceField(choices=DocumentState.choices, required=False)
        category = StringField(required=False)
        tag = StringField(required=False)
        q = StringField(required=False, help_text="Words in the title.")
        effective_from = serializers.DateField(required=False)
        effective_to = serializers.DateField(required=False)

    class DocumentCreateSerializer(DocumentMetadataSerializer):
        collection = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
        title = StringField(max_length=500)
        file = serializers.FileField(required=False, help_text="The first version (optional).")
        change_note = StringField(required=False, default="", allow_blank=True)
        publish_when_ready = serializers.BooleanField(
            required=False, default=False, help_text="Publish it as soon as ingestion is done."
        )

    @extend_schema(
        operation_id="documents_list",
        parameters=[DocumentFilterSerializer],
        responses=paginated_schema(DocumentOutputSerializer),
        tags=["documents"],
    )
    def get(self, request: Request) -> Response:
        filters = self.DocumentFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = dict(filters.validated_data)
        if "collection" in params:
            params["collection_id"] = params.pop("collection")
        if "q" in params:
            params["title_contains"] = params.pop("q")
        documents = selectors.document_list(context=tenant_context(request), **params)
        return paginated_response(
            request=request, view=self, queryset=documents, serializer_class=DocumentOutputSerializer
        )

    @extend_schema(
        request={"multipart/form-data": DocumentCreateSerializer, "application/json": DocumentCreateSerializer},
        responses={201: DocumentOutputSerializer},
        tags=["documents"],
    )
    def post(self, request: Request) -> Response:
        context = tenant_context(request)
        data = self.DocumentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        collection = selectors.collection_get(context=context, collection_id=fields.pop("collection"))
        check_document_create(context, collection, _sent(fields))
        document = services.document_create(tenant=context.tenant, collection=collection, actor=context.actor, **fields)
        return Response(DocumentOutputSerializer(document).data, status=status.HTTP_201_CREATED)


def _sent(fields: dict) -> list[str]:
    """The names of the fields a request really sets (a `publish_when_ready` of false asks nothing)."""
    return [name for name, value in fields.items() if name != "publish_when_ready" or value]


def _document(request: Request, document_id: int, action: Action, fields: dict | None = None):
    context = tenant_context(request)
    document = selectors.document_get(context=context, document_id=document_id)
    check_document(context, document, action, _sent(fields or {}))
    return context, document


def _version(context, document, number: int):
    version = readable_versions(context, document).filter(number=number).first()
    if version is None:
        raise NotFound(f"Document {document.pk} has no version {number}.", code="version_not_found")
    return version


class DocumentDetailView(APIView):
    required_scopes = READ_WRITE

    class DocumentUpdateSerializer(DocumentMetadataSerializer):
        pass

    @extend_schema(responses=DocumentOutputSerializer, tags=["documents"])
    def get(self, request: Request, document_id: int) -> Response:
        _, document = _document(request, document_id, Action.VIEW)
        return Response(DocumentOutputSerializer(document).data)

    @extend_schema(request=DocumentUpdateSerializer, responses=DocumentOutputSerializer, tags=["documents"])
    def patch(self, request: Request, document_id: int) -> Response:
        data = self.DocumentUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        context, document = _document(request, document_id, Action.UPDATE, data.validated_data)
        document = services.document_update(document=document, actor=context.actor, **data.validated_data)
        return Response(DocumentOutputSerializer(document).data)

    # 200 with the document (now deleted): drf-spectacular would document a DELETE as 204.
    @extend_schema(
        request=ReasonSerializer, responses={200: DocumentOutputSerializer}, tags=["documents"], summary="Soft-delete"
    )
    def delete(self, request: Request, document_id: int) -> Response:
        context, document = _document(request, document_id, Action.LIFECYCLE)
        reason = ReasonSerializer(data=request.data)
        reason.is_valid(raise_exception=True)
        document = services.document_delete(document=document, actor=context.actor, **reason.validated_data)
        return Response(DocumentOutputSerializer(document).data)


class VersionListCreateView(APIView):
    required_scopes = READ_WRITE
    parser_classes = [MultiPartParser, FormParser]

    class VersionUploadSerializer(serializers.Serializer):
        file = serializers.FileField()
        change_note = StringField(required=False, default="", allow_blank=True, max_length=2000)
        publish_when_ready = serializers.BooleanField(
            required=False, default=False, help_text="Publish it as soon as ingestion is done (needs manage access)."
        )

    @extend_schema(
        operation_id="document_versions_list", responses=paginated_schema(VersionOutputSerializer), tags=["versions"]
    )
    def get(self, request: Request, document_id: int) -> Response:
        context, document = _document(request, document_id, Action.VIEW)
        versions = readable_versions(context, document)
        return paginated_response(
            request=request, view=self, queryset=versions, serializer_class=VersionOutputSerializer
        )

    @extend_schema(
        request={"multipart/form-data": VersionUploadSerializer},
        responses={201: VersionOutputSerializer},
        tags=["versions"],
        summary="Upload a new version (multipart)",
    )
    def post(self, request: Request, document_id: int) -> Response:
        data = self.VersionUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        context, document = _document(request, document_id, Action.UPLOAD, data.validated_data)
        version = services.version_upload(document=document, actor=context.actor, **data.validated_data)
        return Response(VersionOutputSerializer(version).data, status=status.HTTP_201_CREATED)


class VersionDetailView(APIView):
    required_scope = Scope.DOCUMENTS_READ

    @extend_schema(responses=VersionOutputSerializer, tags=["versions"])
    def get(self, request: Request, document_id: int, number: int) -> Response:
        context, document = _document(request, document_id, Action.VIEW)
        return Response(VersionOutputSerializer(_version(context, document, number)).data)


class VersionContentView(APIView):
    required_scope = Scope.DOCUMENTS_READ

    # The file goes out with its own media type (detected at upload), one of the supported ones.
    @extend_schema(
        responses={(200, media_type): OpenApiTypes.BINARY for media_type in SUPPORTED_MEDIA_TYPES},
        tags=["versions"],
        summary="Download a version's file",
    )
    def get(self, request: Request, document_id: int, number: int):
        context, document = _document(request, document_id, Action.VIEW)
        version = _version(context, document, number)
        if not version.file:
            raise NotFound(f"Version {number} was purged; its content is gone.", code="version_purged")
        return FileResponse(
            version.file.open("rb"),
            as_attachment=True,
            filename=version.original_filename,
            content_type=version.media_type,
        )


class VersionPublishView(APIView):
    required_scope = Scope.DOCUMENTS_WRITE

    @extend_schema(
        request=ReasonSerializer,
        responses=DocumentOutputSerializer,
        tags=["lifecycle"],
        summary="Publish a ready version",
    )
    def post(self, request: Request, document_id: int, number: int) -> Response:
        context, document = _document(request, document_id, Action.PUBLISH)
        version = selectors.version_get(document=document, number=number)
        reason = ReasonSerializer(data=request.data)
        reason.is_valid(raise_exception=True)
        document = services.version_publish(version=version, actor=context.actor, **reason.validated_data)
        return Response(DocumentOutputSerializer(document).data)


class DocumentRollbackView(APIView):
    required_scope = Scope.DOCUMENTS_WRITE

    class RollbackSerializer(serializers.Serializer):
        version_id = serializers.IntegerField(
            min_value=1, max_value=2**63 - 1, help_text="The id of an earlier, ready version of this document."
        )
        reason = StringField(required=False, default="", allow_blank=True, max_length=2000)

    @extend_schema(
        request=RollbackSerializer,
        responses=DocumentOutputSerializer,
        tags=["lifecycle"],
        summary="Re-publish an earlier version",
    )
    def post(self, request: Request, document_id: int) -> Response:
        context, document = _document(request, document_id, Action.PUBLISH)
        data = self.RollbackSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = selectors.version_get_by_id(context=context, version_id=data.validated_data["version_id"])
        document = services.document_rollback(
            document=document, version=version, actor=context.actor, reason=data.validated_data["reason"]
        )
        return Response(DocumentOutputSerializer(document).data)


class _LifecycleService(Protocol):
    def __call__(self, *, document: Document, actor: Actor, reason: str = ...) -> Document: ...


class _LifecycleView(APIView):
    required_scope = Scope.DOCUMENTS_WRITE
    service: ClassVar[_LifecycleService]  # each view's service, called with the reason it was sent

    def post(self, request: Request, document_id: int) -> Response:
        context, document = _document(request, document_id, Action.LIFECYCLE)
        reason = ReasonSerializer(data=request.data)
        reason.is_valid(raise_exception=True)
        document = type(self).service(document=document, actor=context.actor, **reason.validated_data)
        return Response(DocumentOutputSerializer(document).data)


@extend_schema(
    request=ReasonSerializer,
    responses=DocumentOutputSerializer,
    tags=["lifecycle"],
    summary="Archive (hide from search)",
)
class DocumentArchiveView(_LifecycleView):
    service = staticmethod(services.document_archive)


@extend_schema(request=ReasonSerializer, responses=DocumentOutputSerializer, tags=["lifecycle"], summary="Unarchive")
class DocumentUnarchiveView(_LifecycleView):
    service = staticmethod(services.document_unarchive)


@extend_schema(
    request=ReasonSerializer,
    responses=DocumentOutputSerializer,
    tags=["lifecycle"],
    summary="Purge the content (refused under legal hold or before retention ends)",
)
class DocumentPurgeView(_LifecycleView):
    service = staticmethod(services.document_purge)


class RetentionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = StringField()
    state = StringField()
    legal_hold = serializers.BooleanField()
    retention_until = serializers.DateField(allow_null=True)
    purged_at = serializers.DateTimeField(allow_null=True)


class DocumentRetentionView(APIView):
    """Legal hold and retention, for the compliance team: the owner and compliance roles and keys
    with `documents:retention` (which needs no documents:read/write and no grant: the hold may have
    to cover any document of the tenant, including deleted ones)."""

    required_scope = Scope.DOCUMENTS_RETENTION

    class RetentionInputSerializer(StrictInputSerializer):  # a misspelt field must not be a silent no-op
        legal_hold = serializers.BooleanField(required=False, help_text="Set (true) or lift (false) the legal hold.")
        retention_until = serializers.DateField(
            required=False, allow_null=True, help_text="Purge is refused before this date; null clears it."
        )
        reason = StringField(required=False, default="", allow_blank=True, max_length=2000)

    def _get(self, request: Request, document_id: int):
        context = tenant_context(request)
        services.require_retention_authority(tenant=context.tenant, actor=context.actor)
        return context, selectors.document_get_for_retention(context=context, document_id=document_id)

    @extend_schema(
        responses=RetentionOutputSerializer,
        tags=["lifecycle"],
        summary="Legal hold and retention (needs documents:retention)",
    )
    def get(self, request: Request, document_id: int) -> Response:
        _, document = self._get(request, document_id)
        return Response(RetentionOutputSerializer(document).data)

    @extend_schema(
        request=RetentionInputSerializer,
        responses=RetentionOutputSerializer,
        tags=["lifecycle"],
        summary="Set or lift the legal hold, set or clear the retention date (needs documents:retention)",
        description=(
            "Only the owner and compliance roles, and API keys holding the `documents:retention` scope "
            "themselves, may: not a `manage` grant, `documents:write` or the admin role. Each change is "
            "a history event (`legal_hold_set`, `legal_hold_lifted`, `retention_changed`) with who, the "
            "old and the new value."
        ),
    )
    def patch(self, request: Request, document_id: int) -> Response:
        data = self.RetentionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        context, document = self._get(request, document_id)
        document = services.document_retention_set(document=document, actor=context.actor, **data.validated_data)
        return Response(RetentionOutputSerializer(document).data)


class DocumentHistoryView(APIView):
    required_scope = Scope.DOCUMENTS_READ

    @extend_schema(
        operation_id="document_history_list", responses=paginated_schema(EventOutputSerializer), tags=["documents"]
    )
    def get(self, request: Request, document_id: int) -> Response:
        _, document = _document(request, document_id, Action.HISTORY)
        events = selectors.document_history(document=document)
        return paginated_response(request=request, view=self, queryset=events, serializer_class=EventOutputSerializer)


class DocumentGrantsView(APIView):
    required_scopes = READ_WRITE

    class DocumentGrantsSerializer(serializers.Serializer):
        inherited = serializers.BooleanField(help_text="True while the document reads its collection's grants.")
        grants = GrantSerializer(many=True)

    @extend_schema(
        responses=DocumentGrantsSerializer, tags=["documents"], summary="The grants that apply to the document"
    )
    def get(self, request: Request, document_id: int) -> Response:
        context, document = _document(request, document_id, Action.GRANTS)
        source = document if document.has_own_grants else document.collection
        return Response({"inherited": not document.has_own_grants, "grants": _grants_out(context, source)})

    @extend_schema(
        request=GrantsInputSerializer,
        responses=DocumentGrantsSerializer,
        tags=["documents"],
        summary="Give the document its own grants",
    )
    def put(self, request: Request, document_id: int) -> Response:
        context, document = _document(request, document_id, Action.GRANTS)
        data = GrantsInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.grants_replace(
            obj=document, grants=_grants_in(context, data.validated_data["grants"]), actor=context.actor
        )
        return Response({"inherited": False, "grants": _grants_out(context, document)})

    @extend_schema(
        responses={200: DocumentGrantsSerializer},
        tags=["documents"],
        summary="Drop the document's own grants: inherit again",
    )
    def delete(self, request: Request, document_id: int) -> Response:
        context, document = _document(request, document_id, Action.GRANTS)
        services.document_grants_inherit(document=document, actor=context.actor)
        return Response({"inherited": True, "grants": _grants_out(context, document.collection)})
