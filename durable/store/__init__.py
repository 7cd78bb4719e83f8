"""SQLite persistence: schema, migrations, the store API, and result serializers."""

from __future__ import annotations

from durable.store.connection import default_db_path, resolve_db_path
from durable.store.records import NewTaskRun, Transition
from durable.store.repository import Store
from durable.store.serializers import (
    JSONSerializer,
    PickleSerializer,
    Serializer,
)

__all__ = [
    "JSONSerializer",
    "NewTaskRun",
    "PickleSerializer",
    "Serializer",
    "Store",
    "Transition",
    "default_db_path",
    "resolve_db_path",
]
