"""The search benchmark's tenant-layout mode runs end to end on a real Elasticsearch and writes its
table (the figures themselves are in docs/benchmarks/, measured by hand: a benchmark, not a test)."""

import pytest
from django.core.management import call_command


@pytest.mark.full_profile
def test_the_tenant_layout_benchmark_measures_both_layouts_and_cleans_up(tmp_path, settings):
    from apps.search.backends.elasticsearch import ElasticsearchBackend

    output = tmp_path / "tenants.md"
    call_command("search_benchmark", tenants=[2, 4], chunks=120, queries=5, output=str(output))
    rows = [line for line in output.read_text().splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split("|")[1].strip() for row in rows] == ["2", "4"]
    assert [int(row.split("|")[3]) for row in rows] == [2, 4]  # one index per tenant
    backend = ElasticsearchBackend(
        {
            **settings.SEARCH["ELASTICSEARCH"],
            "INDEX_PREFIX": f"{settings.SEARCH['ELASTICSEARCH']['INDEX_PREFIX']}-bench",
        }
    )
    try:
        assert backend.client.indices.get(index=f"{backend.prefix}-*", allow_no_indices=True) == {}
    finally:
        backend.close()
