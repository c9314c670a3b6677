#!/usr/bin/env bash
# Run once by the postgres image when its data volume is first initialised (as the image's
# superuser, POSTGRES_USER=knowledge_platform, the owner that migrates). Creates the two other
# roles of docs/audit.md, "Database privileges"; migrate grants them their privileges.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -v app_password="$POSTGRES_APP_PASSWORD" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE knowledge_platform_app LOGIN NOCREATEDB NOCREATEROLE NOSUPERUSER PASSWORD :'app_password';
CREATE ROLE knowledge_platform_audit_purger NOLOGIN NOCREATEDB NOCREATEROLE NOSUPERUSER;
GRANT knowledge_platform_audit_purger TO knowledge_platform;
SQL
