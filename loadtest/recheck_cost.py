"""What the re-check's documents statement (apps/documents/selectors.readable_published_documents)
costs an owner, who reads by role, and a reader, who reads through a group's grant
(django-guardian), on the throughput benchmark's tenant. Each is split into building the
queryset, compiling it, and running it, and PostgreSQL's own planning and execution come from
EXPLAIN ANALYZE. Run `bin/throughput --as reader` once first: it makes the reader and the grant.

    bin/throughput recheck [--calls 100] [--hits 60]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "platform"), str(Path(__file__).resolve().parent)]


def p50(call, calls: int) -> float:
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return sorted(times)[calls // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--hits", type=int, default=60, help="documents named by the hits (default 60)")
    parser.add_argument("--database", default="kp_tp")
    parser.add_argument("--index-prefix", default="kp-tp")
    args = parser.parse_args()
    if os.environ.get("KP_RECHECK_CHILD") != "1":  # the benchmark's database and settings, then again
        from run import server_env
        from throughput import benchmark_env, serving_url

        env = benchmark_env(args.database, args.index_prefix)
        env = server_env({**env, "DATABASE_URL": serving_url(env), "KP_RECHECK_CHILD": "1", "LOG_LEVEL": "WARNING"})
        return subprocess.run([sys.executable, __file__, *sys.argv[1:]], cwd=ROOT, env=env, check=False).returncode

    import django

    django.setup()
    from django.db import connection
    from throughput import OWNER, READER, TENANT

    from apps.documents.models import Document
    from apps.documents.selectors import readable_published_documents
    from apps.tenants.models import Membership, Tenant
    from apps.tenants.resolution import act_for, member_context

    tenant = Tenant.objects.get(slug=TENANT)
    members = {m.username: m for m in Membership.objects.select_related("tenant", "user").filter(tenant=tenant)}
    if READER not in members:
        raise SystemExit(f"no member '{READER}' in {TENANT}: run `bin/throughput --as reader` once first")
    ids = list(Document.objects.filter(tenant=tenant).order_by("pk").values_list("pk", flat=True)[: args.hits])

    print(f"readable_published_documents over {len(ids)} documents, p50 of {args.calls} calls, ms:\n")
    print("| caller | build | build + compile | build + compile + run | PostgreSQL planning | execution | SQL chars |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in (OWNER, READER):
        context = act_for(member_context(members[name]))

        def build(context=context):
            return (
                readable_published_documents(context)
                .filter(pk__in=ids)
                .order_by()
                .values_list("pk", "published_version_id")
            )

        list(build())  # warm: content types, connection
        sql, params = build().query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            plan = cursor.fetchone()[0][0]
        print(
            f"| {name} | {p50(build, args.calls):.2f} "
            f"| {p50(lambda b=build: b().query.get_compiler(connection.alias).as_sql(), args.calls):.2f} "
            f"| {p50(lambda b=build: list(b()), args.calls):.2f} "
            f"| {plan['Planning Time']:.2f} | {plan['Execution Time']:.2f} | {len(sql):,} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
