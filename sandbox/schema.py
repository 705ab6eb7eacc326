"""Shopify's real Admin GraphQL schema (2026-10), loaded once per process on first use.

Source: Shopify's npm package @shopify/dev-mcp 1.16.0, dist/data/admin_2026-10.json.gz (ISC).
"""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

from graphql import DocumentNode, GraphQLSchema, build_client_schema, parse, validate

API_VERSION = "2026-10"
SCHEMA_FILE = Path(__file__).parent / "data" / f"admin-{API_VERSION}.json.gz"
_schema: GraphQLSchema | None = None
_lock = threading.Lock()


def admin_schema() -> GraphQLSchema:
    global _schema
    with _lock:
        if _schema is None:
            with gzip.open(SCHEMA_FILE) as f:
                schema = build_client_schema(json.load(f)["data"])
            # Shopify's own schema breaks a few of graphql-core's type-system rules (deprecated
            # implementations of non-deprecated interface fields). It is what Shopify serves, so it
            # is taken as valid: operations are still validated against it in full.
            schema._validation_errors = []  # type: ignore[attr-defined]
            _schema = schema
        return _schema


def validation_errors(document: str) -> list[str]:
    """[] when `document` is a valid operation for Shopify's Admin API."""
    try:
        doc: DocumentNode = parse(document)
    except Exception as exc:  # GraphQLSyntaxError
        return [str(exc)]
    return [e.message for e in validate(admin_schema(), doc)]


def enum_values(name: str) -> list[str]:
    return list(admin_schema().get_type(name).values)  # type: ignore[union-attr]
