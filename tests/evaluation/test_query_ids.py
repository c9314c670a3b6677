"""Issue 15, item 6: ids in query strings accept ASCII digits only. `str.isdigit` accepts '²'
(and other digits int() refuses or reads differently); those were a 500."""

import pytest

from apps.core.exceptions import ApplicationError
from apps.evaluation.metrics import measure
from apps.tenants.models import Scope
from tests.conftest import key_client


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["²", "١", "x", "-1", "99999999999999999999", "1.0"])
def test_a_golden_set_filter_that_is_not_an_id_is_a_400_naming_it(acme, value):
    response = key_client(acme.key(scopes=[Scope.EVALUATION])).get("/api/v1/evaluation/runs", {"golden_set": value})
    assert response.status_code == 400, (response.status_code, response.content)
    assert "golden_set" in response.json()["extra"]["fields"]


@pytest.mark.django_db
def test_a_golden_set_filter_that_is_an_id_filters(acme):
    response = key_client(acme.key(scopes=[Scope.EVALUATION])).get("/api/v1/evaluation/runs", {"golden_set": "12"})
    assert response.status_code == 200 and response.json()["count"] == 0


@pytest.mark.parametrize("name", ["Recall@²", "nDCG@١٠", "MRR@"])
def test_a_measure_cutoff_that_is_not_ascii_digits_is_refused_as_unknown(name):
    with pytest.raises(ValueError, match="Unknown measure"):
        measure(name)


@pytest.mark.parametrize("value", ["²", "١٢", " 1", "+1", "0"])
def test_parse_id_takes_only_positive_ascii_integers(value):
    from apps.core.params import parse_id

    with pytest.raises(ApplicationError) as caught:
        parse_id(value, field="thing")
    assert "thing" in caught.value.extra["fields"]
    assert parse_id("42", field="thing") == 42
