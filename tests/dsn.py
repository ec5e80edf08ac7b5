"""The test PostgreSQL database as a DATABASE_URL, for the subprocesses tests start."""

from __future__ import annotations

from urllib.parse import quote


def database_url(name: str | None = None, *, query: str = "") -> str:
    """URL of the test database (or `name` on the same server); Unix-socket hosts (the embedded
    server) become `postgresql://user@/db?host=<dir>&port=<n>`."""
    from django.db import connection

    db = connection.settings_dict
    auth = quote(db.get("USER") or "postgres")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    name = name or db["NAME"]
    if host.startswith("/"):
        url = f"postgresql://{auth}@/{name}?host={quote(host)}&port={port}"
        return f"{url}&{query}" if query else url
    url = f"postgresql://{auth}@{host}:{port}/{name}"
    return f"{url}?{query}" if query else url
