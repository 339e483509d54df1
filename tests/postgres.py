"""The machine's PostgreSQL as the suite uses it ($POSTGRES_URL, default the `test` database at
127.0.0.1:5432): every test that needs it gets a schema of its own (`test_<12 hex digits>`),
dropped with all it holds afterwards, also when the test failed (a schema left by a run that was
killed before it could drop it is dropped at the end of the next run). A test that needs PostgreSQL
fails loudly when it is absent, as one that needs RabbitMQ does."""

import os
from urllib.parse import quote
from uuid import uuid4

import psycopg

POSTGRES_URL = os.environ.get("POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PREFIX = "test_"
CREATED: set[str] = set()  # the schemas this run made


def in_schema(url: str, schema: str) -> str:
    """`url` with `schema` first on its search path (libpq's `options` parameter)."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema}')}"


async def create_schema(url: str) -> str:
    schema = f"{PREFIX}{uuid4().hex[:12]}"
    CREATED.add(schema)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
    return schema


async def drop_schema(url: str, schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def left_in_database(url: str = POSTGRES_URL) -> tuple[list[str], list[str]]:
    """The test schemas still in the database: this run's (none after a clean run), and those an
    earlier run left, which are dropped here."""
    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"{PREFIX}%",)
        ).fetchall()
        schemas = [row[0] for row in rows]
        earlier = [schema for schema in schemas if schema not in CREATED]
        for schema in earlier:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return [schema for schema in schemas if schema in CREATED], earlier
