"""The pure parts of pseudo-relevance feedback, against hand-computed cases."""

import numpy as np
import pytest

from apps.search.feedback import moved_vector, one_per_document


def test_one_per_document_keeps_each_documents_best_item_in_order():
    ranked = [("a1", 1), ("a2", 1), ("b1", 2), ("a3", 1), ("c1", 3), ("d1", 4)]
    assert one_per_document(ranked, lambda item: item[1], 3) == [("a1", 1), ("b1", 2), ("c1", 3)]
    assert one_per_document(ranked, lambda item: item[1], 10) == [("a1", 1), ("b1", 2), ("c1", 3), ("d1", 4)]


def test_moved_vector_is_the_weighted_mean_normalised():
    query = np.array([1.0, 0.0], dtype=np.float32)
    feedback = [np.array([0.0, 1.0]), np.array([0.0, 1.0])]
    # 0.5 · (1, 0) + 0.5 · (0, 1) = (0.5, 0.5) → (0.7071, 0.7071)
    assert moved_vector(query, feedback, query_weight=0.5) == pytest.approx([0.70710677, 0.70710677])
    # weight 0.8: (0.8, 0.2) / 0.8246
    assert moved_vector(query, feedback, query_weight=0.8) == pytest.approx([0.9701425, 0.2425356])
    assert moved_vector(query, feedback, query_weight=1.0) == pytest.approx([1.0, 0.0])
    assert moved_vector(query, [], query_weight=0.5) is query
    assert moved_vector(query, feedback, query_weight=0.5).dtype == np.float32
