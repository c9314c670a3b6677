"""The size of every vector the platform stores, indexes and searches with: the embedding model's
output dimension (all-MiniLM-L6-v2). One place: the embedder refuses a model of another size when
it loads it (apps/corpus/embedding.py), the Elasticsearch mapping declares it, and tests and
benchmarks build their vectors with it. Another size means a model of that size, every chunk
embedded again (`manage.py reembed`) and the search indices rebuilt (`manage.py search_index rebuild`)."""

EMBEDDING_DIMS = 384
