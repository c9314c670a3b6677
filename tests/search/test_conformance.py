"""One conformance suite for every search backend (Wagtail's BackendTests pattern): the mixin holds
the tests, each subclass only names its backend. The Elasticsearch class needs the full profile:
skipped on a developer's machine without it, a failure under CI=true."""

from __future__ import annotations

import uuid
from datetime import date

import numpy as np
import pytest
from django.conf import settings

from apps.corpus.vectors import EMBEDDING_DIMS
from apps.search import fusion
from apps.search.backends.base import InvalidQuery, SearchBackendError
from apps.search.backends.elasticsearch import ElasticsearchBackend
from apps.search.backends.embedded import EmbeddedBackend
from apps.search.types import ChunkRef, Fusion, IndexedChunk, Mode, SearchFilters, SearchQuery

DIMS = EMBEDDING_DIMS
ALICE, BOB, EVERYONE = "user:1", "user:2", "tenant-wide"


def direction(*weights: tuple[int, float]) -> np.ndarray:
    """A unit vector from (axis, weight) pairs: nearby axes mean similar meaning."""
    v = np.zeros(DIMS, dtype=np.float32)
    for axis, weight in weights:
        v[axis] = weight
    return v / np.linalg.norm(v)


def chunk(
    cid: str,
    text: str,
    vec: np.ndarray,
    *,
    tenant=1,
    principals=(EVERYONE,),
    document=None,
    collection=1,
    published=True,
    category="",
    tags=(),
    effective=None,
    title="",
) -> IndexedChunk:
    return IndexedChunk(
        chunk_id=cid,
        tenant_id=tenant,
        collection_id=collection,
        document_id=document or abs(hash(cid)) % 10_000,
        version_id=1,
        published=published,
        principals=tuple(principals),
        title=title,
        text=text,
        vector=vec,
        category=category,
        tags=tuple(tags),
        effective_date=effective,
    )


def q(
    text: str = "", vec: np.ndarray | None = None, *, mode=Mode.HYBRID, tenant=1, principals=(EVERYONE,), **kw
) -> SearchQuery:
    return SearchQuery(tenant_id=tenant, principals=tuple(principals), text=text, vector=vec, mode=mode, **kw)


class BackendTests:
    """The behaviour every backend must have. Subclasses provide `make_backend`."""

    backend = None

    @pytest.fixture(autouse=True)
    def _backend(self, tmp_path):
        self.backend = self.make_backend(tmp_path)
        self.backend.ensure_index()
        yield
        self.drop_backend()

    def make_backend(self, tmp_path):
        raise NotImplementedError

    def drop_backend(self) -> None:
        self.backend.close()

    def put(self, *chunks: IndexedChunk) -> None:
        self.backend.index_chunks(list(chunks))
        self.backend.refresh()

    def ids(self, query: SearchQuery) -> list[str]:
        return [hit.chunk_id for hit in self.backend.search(query).hits]

    # ---------------------------------------------------------------- isolation and access
    @pytest.mark.parametrize("mode", list(Mode))
    def test_tenant_isolation(self, mode):
        self.put(
            chunk("a1", "wing flutter at high speed", direction((0, 1))),
            chunk("b1", "wing flutter at high speed", direction((0, 1)), tenant=2),
        )
        assert self.ids(q("wing flutter", direction((0, 1)), mode=mode, tenant=1)) == ["a1"]
        assert self.ids(q("wing flutter", direction((0, 1)), mode=mode, tenant=2)) == ["b1"]
        assert self.ids(q("wing flutter", direction((0, 1)), mode=mode, tenant=3)) == []

    @pytest.mark.parametrize("mode", list(Mode))
    def test_acl_is_a_prefilter_so_top_k_is_among_readable_chunks(self, mode):
        secret = [
            chunk(
                f"s{i}", "boundary layer transition boundary layer", direction((0, 1), (1 + i, 0.05)), principals=(BOB,)
            )
            for i in range(30)
        ]
        readable = chunk(
            "r1", "transition of a boundary layer on a cone", direction((0, 1), (50, 0.6)), principals=(ALICE,)
        )
        self.put(*secret, readable)
        assert self.ids(q("boundary layer transition", direction((0, 1)), mode=mode, principals=(ALICE,), k=1)) == [
            "r1"
        ]
        assert "r1" not in self.ids(
            q("boundary layer transition", direction((0, 1)), mode=mode, principals=(BOB,), k=50)
        )

    def test_unpublished_chunks_are_never_found(self):
        self.put(chunk("draft", "heat transfer in slabs", direction((2, 1)), published=False))
        for mode in Mode:
            assert self.ids(q("heat transfer", direction((2, 1)), mode=mode)) == []

    def test_a_query_without_principals_is_refused(self):
        with pytest.raises(InvalidQuery):
            self.backend.search(q("anything", direction((0, 1)), principals=()))

    def test_principal_updates(self):
        c = chunk("p1", "shock wave interaction", direction((3, 1)), principals=(ALICE,))
        self.put(c)
        assert self.ids(q("shock wave", direction((3, 1)), principals=(BOB,))) == []
        self.put(IndexedChunk(**{**c.__dict__, "principals": (BOB,)}))
        assert self.ids(q("shock wave", direction((3, 1)), principals=(BOB,))) == ["p1"]
        assert self.ids(q("shock wave", direction((3, 1)), principals=(ALICE,))) == []

    def test_a_chunk_written_unpublished_leaves_the_index(self):
        c = chunk("u1", "shock wave interaction", direction((3, 1)))
        self.put(c)
        self.put(IndexedChunk(**{**c.__dict__, "published": False}))
        assert self.backend.fingerprints() == {}
        self.put(chunk("never", "a draft", direction((3, 1)), published=False))
        assert self.backend.fingerprints() == {}

    def test_deletes(self):
        self.put(
            chunk("d1", "supersonic inlet", direction((4, 1))),
            chunk("d2", "supersonic inlet design", direction((4, 1))),
        )
        self.backend.delete_chunks([ChunkRef("d1", 1), ChunkRef("never-there", 1)])
        self.backend.refresh()
        assert self.ids(q("supersonic inlet", direction((4, 1)))) == ["d2"]

    def test_indexing_twice_is_idempotent(self):
        c = chunk("i1", "panel flutter", direction((5, 1)))
        self.put(c)
        self.put(c)
        assert self.ids(q("panel flutter", direction((5, 1)))) == ["i1"]
        assert self.backend.fingerprints() == {"i1": (1, c.fingerprint())}

    # ---------------------------------------------------------------- metadata filters
    def _corpus(self):
        self.put(
            chunk(
                "m1",
                "lift of a delta wing",
                direction((6, 1)),
                collection=1,
                category="policy",
                tags=("wing", "lift"),
                effective=date(2024, 1, 1),
                document=11,
            ),
            chunk(
                "m2",
                "lift of a swept wing",
                direction((6, 1)),
                collection=2,
                category="manual",
                tags=("wing",),
                effective=date(2025, 6, 1),
                document=12,
            ),
            chunk(
                "m3",
                "lift of a slender wing",
                direction((6, 1)),
                collection=2,
                category="policy",
                tags=("slender",),
                effective=None,
                document=13,
            ),
        )

    @pytest.mark.parametrize(
        "filters, expected",
        [
            (SearchFilters(collection_ids=(2,)), {"m2", "m3"}),
            (SearchFilters(categories=("policy",)), {"m1", "m3"}),
            (SearchFilters(tags=("wing",)), {"m1", "m2"}),
            (SearchFilters(tags=("slender", "lift")), {"m1", "m3"}),
            (SearchFilters(document_ids=(12, 13)), {"m2", "m3"}),
            (SearchFilters(date_from=date(2025, 1, 1)), {"m2"}),
            (SearchFilters(date_to=date(2024, 12, 31)), {"m1"}),
            (SearchFilters(categories=("policy",), collection_ids=(2,)), {"m3"}),
        ],
    )
    @pytest.mark.parametrize("mode", list(Mode))
    def test_metadata_filters(self, filters, expected, mode):
        self._corpus()
        assert set(self.ids(q("lift wing", direction((6, 1)), mode=mode, filters=filters))) == expected

    # ---------------------------------------------------------------- ranking
    def _ranking_corpus(self):
        # BM25 prefers k1 > k2 > k3 (more query words), dense prefers k3 > k2 > k1.
        self.put(
            chunk("k1", "jet noise jet noise reduction nozzle", direction((7, 0.2), (8, 1)), document=1),
            chunk("k2", "jet noise reduction", direction((7, 0.6), (8, 1)), document=2),
            chunk("k3", "nozzle acoustics", direction((7, 1), (8, 0.1)), document=3),
        )

    def test_bm25_and_dense_orders(self):
        self._ranking_corpus()
        assert self.ids(q("jet noise", mode=Mode.BM25)) == ["k1", "k2"]
        assert self.ids(q(vec=direction((7, 1)), mode=Mode.DENSE)) == ["k3", "k2", "k1"]

    def test_fusion_order_matches_the_fusion_functions(self):
        self._ranking_corpus()
        bm25 = self.ids(q("jet noise", mode=Mode.BM25))
        dense = self.ids(q(vec=direction((7, 1)), mode=Mode.DENSE))
        rrf = fusion.reciprocal_rank([bm25, dense], k=60)
        expected = sorted(rrf, key=lambda cid: (-rrf[cid], cid))
        result = self.backend.search(q("jet noise", direction((7, 1)), fusion=Fusion.RRF))
        assert [h.chunk_id for h in result.hits] == expected
        assert (
            result.hits[0].components["bm25_rank"] is not None and result.hits[0].components["dense_rank"] is not None
        )
        assert self.ids(q("jet noise", direction((7, 1)), fusion=Fusion.WEIGHTED, dense_weight=1.0))[:3] == dense
        assert self.ids(q("jet noise", direction((7, 1)), fusion=Fusion.WEIGHTED, dense_weight=0.0))[:2] == bm25

    def test_at_most_n_chunks_per_document(self):
        self.put(
            *[chunk(f"n{i}", "wake of a cylinder", direction((9, 1), (10 + i, 0.1)), document=7) for i in range(3)],
            chunk("other", "wake of a cylinder", direction((9, 1), (20, 0.3)), document=8),
        )
        ids = self.ids(q("cylinder wake", direction((9, 1)), max_per_document=1))
        assert len(ids) == 2 and "other" in ids

    def test_a_score_floor_says_nothing_is_relevant(self):
        self.put(chunk("f1", "stall of airfoils", direction((11, 1))))
        unrelated = direction((12, 1))
        assert self.ids(q(vec=unrelated, mode=Mode.DENSE)) == ["f1"]
        assert self.ids(q(vec=unrelated, mode=Mode.DENSE, min_similarity=0.3)) == []
        assert self.ids(q("stall", direction((11, 1)), mode=Mode.DENSE, min_similarity=0.3)) == ["f1"]

    def test_query_syntax_is_just_text(self):
        self.put(chunk("x1", "OR AND NOT near wing", direction((13, 1))))
        for text in [
            '"wing',
            "wing OR",
            "(wing",
            "wing*",
            "title:wing",
            "NEAR(wing)",
            "-wing",
            "wing AND NOT",
            "{}[]^~\\/:",
        ]:
            self.backend.search(q(text, direction((13, 1)), mode=Mode.BM25))
        assert self.ids(q("title:wing*", mode=Mode.BM25)) == ["x1"]

    def test_highlights_mark_the_matching_words(self):
        self.put(chunk("h1", "The flutter of <panels> at supersonic speeds", direction((14, 1))))
        hit = self.backend.search(q("panel flutter", direction((14, 1)))).hits[0]
        assert "<mark>flutter</mark>" in hit.highlights[0] and "&lt;<mark>panels</mark>&gt;" in hit.highlights[0]

    # ---------------------------------------------------------------- rebuild
    def test_rebuild_replaces_the_index_from_the_given_chunks(self):
        self.put(
            chunk("old", "vortex shedding", direction((15, 1))), chunk("gone", "vortex", direction((15, 1)), tenant=2)
        )
        fresh = [
            chunk(f"new{i}", "vortex shedding behind bluff bodies", direction((15, 1), (16 + i, 0.2))) for i in range(3)
        ]
        report = self.backend.rebuild(
            iter([*fresh, chunk("draft", "vortex shedding", direction((15, 1)), published=False)])
        )
        assert report.chunks == 3
        assert sorted(self.ids(q("vortex shedding", direction((15, 1))))) == ["new0", "new1", "new2"]
        assert self.ids(q("vortex", direction((15, 1)), tenant=2)) == []  # a tenant left with nothing
        assert self.backend.fingerprints() == {c.chunk_id: (1, c.fingerprint()) for c in fresh}

    # ---------------------------------------------------------------- tenant-isolated scoring
    # Scores come from statistics (document frequencies, lengths) of the index that holds the
    # chunk. These tests fix one tenant's published corpus, then write around it everything
    # another tenant or the same tenant's drafts can, and require every hit, every score and
    # every rank to stay equal to the last digit.
    PROBES = [("jet noise", (7, 1)), ("nozzle", (8, 1)), ("boundary layer jet", (9, 1)), ("noise reduction", (7, 0.3))]

    def _tenant_corpus(self, tenant=1):
        self.put(
            chunk("k1", "jet noise jet noise reduction nozzle", direction((7, 0.2), (8, 1)), tenant=tenant, document=1),
            chunk(
                "k2", "jet noise reduction in a boundary layer", direction((7, 0.6), (8, 1)), tenant=tenant, document=2
            ),
            chunk("k3", "nozzle acoustics", direction((7, 1), (8, 0.1)), tenant=tenant, document=3, title="Jet nozzle"),
            chunk("k4", "a quiet boundary layer", direction((9, 1)), tenant=tenant, document=4, principals=(ALICE,)),
        )

    def _answers(self, tenant=1):
        return [
            self.backend.search(
                q(text, direction(axis), mode=mode, tenant=tenant, principals=principals, fusion=fusion_)
            ).hits
            for text, axis in self.PROBES
            for mode in Mode
            for fusion_ in Fusion
            for principals in ((EVERYONE,), (ALICE, EVERYONE))
        ]

    def _noise(self, tenant, *, published, start=0):
        """Chunks full of the probe words, and vectors next to the probe vectors."""
        return [
            chunk(
                f"noise-{tenant}-{published}-{i}",
                "jet " * (i % 5 + 1) + "noise nozzle boundary layer reduction " * (i % 3),
                direction((7, 1), (8, 0.5), (30 + i % 40, 0.3)),
                tenant=tenant,
                published=published,
                document=100 + i,
                principals=(EVERYONE, ALICE),
            )
            for i in range(start, start + 60)
        ]

    def test_scores_are_identical_whatever_another_tenant_writes(self):
        self._tenant_corpus()
        before = self._answers()
        assert before[0] and all(h.components["bm25"] is not None for h in before[0] if h.components["bm25_rank"])
        self.put(*self._noise(2, published=True), *self._noise(2, published=False))
        self.backend.delete_chunks([ChunkRef(f"noise-2-True-{i}", 2) for i in range(0, 60, 3)])
        self.put(*self._noise(3, published=True, start=60))
        self.backend.refresh()
        assert self._answers() == before

    def test_the_index_generation_a_tenant_is_served_from_moves_with_its_own_writes_only(self):
        # The audit record names it: another tenant's writes must not show in it either.
        self._tenant_corpus()
        served = lambda: {c.index for side in self.backend.retrieve(q("jet noise", direction((7, 1)))) for c in side}  # noqa: E731
        before = served()
        self.put(*self._noise(2, published=True))
        self.backend.delete_chunks([ChunkRef("noise-2-True-0", 2)])
        assert served() == before
        self.put(chunk("k9", "jet noise", direction((7, 1)), document=9))
        if self.backend.name == "embedded":  # a write count; Elasticsearch names the concrete index
            assert served() != before

    def test_drafts_never_move_the_published_scores(self):
        self._tenant_corpus()
        before = self._answers()
        self.put(*self._noise(1, published=False))
        assert self._answers() == before


class TestEmbeddedBackend(BackendTests):
    def make_backend(self, tmp_path):
        return EmbeddedBackend({"PATH": str(tmp_path / "search.sqlite3")})

    def _old_layout(self, chunks: list[IndexedChunk]) -> None:
        """Turn the file into the layout before per-tenant tables: one `chunks_fts` for every tenant,
        drafts stored beside published chunks."""
        import sqlite3

        from apps.search.analysis import analyzed_text

        self.backend.index_chunks(chunks)
        self.backend.close()
        db = sqlite3.connect(self.backend.path)
        db.execute("CREATE VIRTUAL TABLE chunks_fts USING fts5(title, body, tokenize = 'unicode61')")
        for rowid, title, text in db.execute("SELECT rowid, title, text FROM chunks").fetchall():
            db.execute(
                "INSERT INTO chunks_fts (rowid, title, body) VALUES (?, ?, ?)",
                (rowid, analyzed_text(title), analyzed_text(text)),
            )
        for (tenant,) in db.execute("SELECT DISTINCT tenant_id FROM chunks").fetchall():
            db.execute(f"DROP TABLE fts_t{tenant}")
        rowid = db.execute(
            "INSERT INTO chunks (chunk_id, tenant_id, collection_id, document_id, version_id, published, title, text,"
            " category, tags, vector, fingerprint) VALUES ('draft', 1, 1, 99, 1, 0, '', 'jet noise nozzle', '', "
            "'[]', ?, 'x')",
            (direction((7, 1)).tobytes(),),
        ).lastrowid
        db.execute(
            "INSERT INTO chunks_fts (rowid, title, body) VALUES (?, '', ?)", (rowid, analyzed_text("jet noise nozzle"))
        )
        db.commit()
        db.close()

    def test_a_file_of_the_layout_before_is_upgraded_in_place(self, tmp_path):
        corpus = [
            *self._noise(2, published=True),
            chunk("k1", "jet noise jet noise reduction nozzle", direction((7, 0.2), (8, 1)), document=1),
            chunk("k3", "nozzle acoustics", direction((7, 1), (8, 0.1)), document=3, title="Jet nozzle"),
        ]
        fresh = EmbeddedBackend({"PATH": str(tmp_path / "fresh.sqlite3")})
        fresh.index_chunks(corpus)
        self._old_layout(corpus)
        upgraded = EmbeddedBackend({"PATH": str(self.backend.path)})
        for tenant in (1, 2):
            for mode in Mode:
                query = q("jet noise nozzle", direction((7, 1)), mode=mode, tenant=tenant)
                assert upgraded.search(query).hits == fresh.search(query).hits
        assert upgraded.fingerprints() == fresh.fingerprints()  # the draft is gone
        upgraded.close()
        fresh.close()

    def test_several_processes_opening_an_old_file_at_once_upgrade_it_once(self):
        import threading

        self._old_layout([chunk(f"c{i}", f"jet noise {i}", direction((7, 1)), tenant=1 + i % 7) for i in range(600)])
        errors = []

        def search():
            backend = EmbeddedBackend({"PATH": str(self.backend.path)})
            try:
                assert len(backend.search(q("jet noise", direction((7, 1)), k=100)).hits) == 86
            except Exception as exc:  # collected: the assertion below shows them all
                errors.append(repr(exc))
            finally:
                backend.close()

        threads = [threading.Thread(target=search) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []


@pytest.mark.full_profile
class TestElasticsearchBackend(BackendTests):
    def make_backend(self, tmp_path):
        prefix = f"kp-conformance-{uuid.uuid4().hex[:8]}"
        return ElasticsearchBackend({**settings.SEARCH["ELASTICSEARCH"], "INDEX_PREFIX": prefix})

    def drop_backend(self) -> None:
        self.backend.drop()
        self.backend.close()

    def test_analysis_is_detected(self):
        self.put(chunk("a1", "wing", direction((0, 1))))
        assert self.backend.analysis() in ("english", "python-english")
        mapping = self.backend.client.indices.get_mapping(index=f"{self.backend.prefix}-chunks-t1")
        assert next(iter(mapping.values()))["mappings"]["_meta"]["analysis"] == self.backend.analysis()

    def test_each_tenant_has_an_index_of_its_own(self):
        self.put(
            chunk("one", "wing", direction((0, 1)), tenant=1),
            chunk("two", "wing", direction((0, 1)), tenant=2),
            chunk("draft", "wing", direction((0, 1)), tenant=3, published=False),
        )
        counts = {t: self.backend.client.count(index=f"{self.backend.prefix}-chunks-t{t}")["count"] for t in (1, 2)}
        assert counts == {1: 1, 2: 1}
        assert not self.backend.client.indices.exists_alias(name=f"{self.backend.prefix}-chunks-t3")

    def test_two_workers_creating_a_tenant_index_at_once_make_one(self):
        from concurrent.futures import ThreadPoolExecutor

        others = [ElasticsearchBackend(self.backend.config) for _ in range(4)]
        try:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda b: b.ensure_index(9), others))
        finally:
            for other in others:
                other.close()
        assert list(self.backend.client.indices.get_alias(name=f"{self.backend.prefix}-chunks-t9")) == [
            f"{self.backend.prefix}-chunks-t9-initial"
        ]

    def test_a_failed_rebuild_leaves_the_serving_indices_alone_and_nothing_behind(self):
        self.put(chunk("a0", "wing", direction((0, 1))))
        before = sorted(self.backend.client.indices.get(index=f"{self.backend.prefix}-chunks*"))
        broken = IndexedChunk(
            **{**chunk("bad", "x", direction((0, 1)), tenant=2).__dict__, "vector": np.ones(3, np.float32)}
        )
        with pytest.raises(SearchBackendError):
            self.backend.rebuild(iter([chunk("a1", "wing", direction((0, 1))), broken]))
        assert sorted(self.backend.client.indices.get(index=f"{self.backend.prefix}-chunks*")) == before
        assert set(self.backend.fingerprints()) == {"a0"} and self.ids(q("wing", direction((0, 1)))) == ["a0"]

    def test_reconcile_sees_only_what_searches_are_served_from(self):
        # An index no alias points at (left by a crash between load and swap) is not what searches
        # read: its chunks must not count as indexed, or reconcile would never repair them.
        self.put(chunk("a0", "wing", direction((0, 1))))
        stray = self.backend._new_index(self.backend._alias(1))
        self.backend.client.index(
            index=stray, id="a1", document=self.backend._source(chunk("a1", "wing", direction((0, 1)))), refresh=True
        )
        assert set(self.backend.fingerprints()) == {"a0"}
        self.backend.rebuild(iter([chunk("a0", "wing", direction((0, 1)))]))
        assert not self.backend.client.indices.exists(index=stray)  # and a rebuild clears it away

    def test_a_first_index_racing_a_rebuild_leaves_the_alias_on_one_index(self, monkeypatch):
        self.backend.rebuild(iter([chunk("a1", "wing", direction((0, 1)), tenant=5)]))
        real = self.backend._call
        looked = []

        def stale_look_up(what, fn, *args, **kwargs):
            if what == "alias look-up" and not looked:
                looked.append(True)
                return False  # the worker looked just before the rebuild moved the alias
            return real(what, fn, *args, **kwargs)

        monkeypatch.setattr(self.backend, "_call", stale_look_up)
        self.backend.ensure_index(5)
        monkeypatch.setattr(self.backend, "_call", real)
        assert len(self.backend.client.indices.get_alias(name=self.backend._alias(5))) == 1
        self.put(chunk("a2", "wing", direction((0, 1)), tenant=5))
        assert sorted(self.ids(q("wing", direction((0, 1)), tenant=5))) == ["a1", "a2"]

    def test_rebuild_removes_the_shared_index_of_the_layout_before(self):
        legacy = f"{self.backend.prefix}-chunks-20250101000000000000"
        self.backend.client.indices.create(index=legacy, aliases={f"{self.backend.prefix}-chunks": {}})
        self.backend.rebuild(iter([chunk("c1", "wing", direction((0, 1)))]))
        assert not self.backend.client.indices.exists(index=legacy)
        assert self.ids(q("wing", direction((0, 1)))) == ["c1"]


@pytest.mark.full_profile
def test_index_removal_goes_in_batches_short_enough_for_one_http_line():
    """A thousand tenants' index names in one DELETE URL are refused (too_long_http_line_exception:
    Elasticsearch takes a 4,096-byte line; seen at 1,000 tenants). Twenty tenants under a long
    prefix make a line as long as that, on the real engine."""
    prefix = f"kp-conformance-{uuid.uuid4().hex[:8]}-" + "x" * 180
    backend = ElasticsearchBackend({**settings.SEARCH["ELASTICSEARCH"], "INDEX_PREFIX": prefix})
    try:
        for tenant in range(1, 21):
            backend.ensure_index(tenant)
        names = list(backend.client.indices.get(index=f"{prefix}-chunks*"))
        assert len(names) == 20 and len(",".join(names)) > 4096
        backend.drop()
        assert backend.client.indices.get(index=f"{prefix}-chunks*", allow_no_indices=True) == {}
    finally:
        for name in backend.client.indices.get(index=f"{prefix}-chunks*", allow_no_indices=True):
            backend.client.indices.delete(index=name)  # one by one, if drop() itself failed
        backend.close()
