"""The per-caller query-vector cache (apps/answers/query_vectors.py): a caller's repeated query
skips the encoder and gets exactly the vector it would have got; nobody else's query ever fills
it for them (a shared cache would let a caller time whether someone else asked the same text);
bounded; off at size 0."""

from types import SimpleNamespace

import numpy as np
import pytest

from apps.answers import query_vectors
from apps.corpus.embedding import get_embedder
from tests.conftest import key_client, user_client

QUERY = "how long must passwords be"


@pytest.fixture
def encoded(monkeypatch, settings):
    """The texts the real encoder is asked for, with an empty cache of the default size."""
    settings.EMBEDDING = {**settings.EMBEDDING, "QUERY_CACHE_SIZE": 256}
    embedder, texts = get_embedder(), []
    real = embedder.encode_queries

    def counting(batch):
        texts.extend(batch)
        return real(batch)

    monkeypatch.setattr(embedder, "encode_queries", counting)
    return texts


def search(client, query=QUERY):
    response = client.post("/api/v1/search", {"query": query, "k": 3}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_a_callers_repeated_query_is_encoded_once_with_the_same_results(library, encoded):
    alice = library.client(library.alice)
    first, second = search(alice), search(alice)
    assert encoded == [QUERY]
    assert [(r["chunk_id"], r["rank"]) for r in first["results"]] == [
        (r["chunk_id"], r["rank"]) for r in second["results"]
    ]


@pytest.mark.django_db
def test_nobody_else_gets_a_vector_from_the_callers_query(library, globex, encoded):
    """The same text from another member, another key, a key acting for the first member, and
    another tenant's member: each is encoded for itself."""
    search(library.client(library.alice))
    search(library.client(library.bob))
    search(library.app())
    key = library.world.key()
    acting = key_client(key).post("/api/v1/search", {"query": QUERY, "as_user": "alice"}, format="json")
    assert acting.status_code == 200, acting.content
    search(key_client(globex.key()))
    assert encoded == [QUERY] * 5


@pytest.mark.django_db
def test_one_person_in_two_tenants_has_a_cache_in_each(library, globex, encoded):
    """The same platform user, a member of two tenants: a query asked in one is encoded again in
    the other (tenants never share an entry)."""
    from apps.tenants import services as tenants

    tenants.membership_add(tenant=globex.tenant, user=library.alice.user, username="alice")
    search(library.client(library.alice))
    search(user_client(library.alice, globex.tenant.slug))
    assert encoded == [QUERY] * 2


@pytest.mark.django_db
def test_another_model_or_runtime_never_reads_an_entry(acme, encoded):
    context = _context(acme)
    served = get_embedder()
    query_vectors.query_vector(context, QUERY, served)
    for identity, runtime in [("other-model:0:default", served.query_runtime), (served.identity, "other-runtime")]:
        other = SimpleNamespace(identity=identity, query_runtime=runtime, encode_queries=served.encode_queries)
        query_vectors.query_vector(context, QUERY, other)
    assert encoded == [QUERY] * 3


@pytest.mark.django_db
def test_another_tenants_queries_never_evict_a_tenants_entries(acme, globex, encoded, settings):
    """Each tenant has its own budget: a caller cannot learn another tenant's activity from seeing
    their own entries go."""
    settings.EMBEDDING = {**settings.EMBEDDING, "QUERY_CACHE_SIZE": 2}
    mine, theirs = _context(acme), _context(globex)
    for text in ["travel", "hotel"]:
        query_vectors.query_vector(mine, text, get_embedder())
    for text in ["one", "two", "three", "four"]:
        query_vectors.query_vector(theirs, text, get_embedder())
    encoded.clear()
    for text in ["travel", "hotel"]:
        query_vectors.query_vector(mine, text, get_embedder())
    assert encoded == []  # both still there


@pytest.mark.django_db
def test_a_text_asked_not_to_be_kept_is_encoded_every_time(acme, encoded):
    """HyDE's query + generated passage (steps.EmbedQuery passes cache=False for it)."""
    for _ in range(2):
        query_vectors.query_vector(_context(acme), QUERY, get_embedder(), cache=False)
    assert encoded == [QUERY] * 2


@pytest.mark.django_db
def test_a_hit_is_the_encoders_own_vector_and_read_only(encoded, acme):
    context = _context(acme)
    first = query_vectors.query_vector(context, QUERY, get_embedder())
    again = query_vectors.query_vector(context, QUERY, get_embedder())
    assert again is first and not again.flags.writeable
    with pytest.raises(ValueError):
        again[0] = 1.0
    assert np.array_equal(first, get_embedder().encode_queries([QUERY])[0])


@pytest.mark.django_db
def test_the_cache_is_bounded_and_evicts_the_least_recently_used(encoded, acme, settings):
    settings.EMBEDDING = {**settings.EMBEDDING, "QUERY_CACHE_SIZE": 2}
    context = _context(acme)
    for text in ["travel", "hotel", "travel", "passwords", "hotel", "travel"]:
        query_vectors.query_vector(context, text, get_embedder())
    # travel, hotel encoded; travel a hit; passwords evicts hotel; hotel evicts travel; travel again.
    assert encoded == ["travel", "hotel", "passwords", "hotel", "travel"]


@pytest.mark.django_db
def test_size_zero_turns_it_off(encoded, acme, settings):
    settings.EMBEDDING = {**settings.EMBEDDING, "QUERY_CACHE_SIZE": 0}
    context = _context(acme)
    for _ in range(3):
        query_vectors.query_vector(context, "travel", get_embedder())
    assert encoded == ["travel"] * 3


def _context(world):
    from apps.tenants.resolution import member_context

    return member_context(world.owner)
