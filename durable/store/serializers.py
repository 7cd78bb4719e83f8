"""Result serializers: cloudpickle (the default) and JSON, chosen per task by name.

Unpickling runs code: a database is trusted input, like a Python file.
"""

from __future__ import annotations

import json
import pickle
import traceback
from typing import Any, Protocol, runtime_checkable

import cloudpickle

from durable.errors import ConfigurationError


@runtime_checkable
class Serializer(Protocol):
    """Turns a task's result into bytes and back."""

    name: str

    def dumps(self, value: Any) -> bytes:
        """Serialize a value; raise if it cannot be."""
        ...

    def loads(self, data: bytes) -> Any:
        """Rebuild a value from `dumps` output."""
        ...


class PickleSerializer:
    """cloudpickle: stores almost any Python value, including lambdas and local classes."""

    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        data: bytes = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        return data

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


class JSONSerializer:
    """JSON: readable by any tool, for values made of dicts, lists, str, numbers, bools."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, allow_nan=True).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


PICKLE, JSON = PickleSerializer(), JSONSerializer()
SERIALIZERS: dict[str, Serializer] = {PICKLE.name: PICKLE, JSON.name: JSON}
"""The serializers a stored result can name."""


def resolve_serializer(spec: str | Serializer | None) -> Serializer:
    """Return the serializer a task asked for (None means cloudpickle)."""
    if spec is None:
        return PICKLE
    if isinstance(spec, str):
        try:
            return SERIALIZERS[spec]
        except KeyError:
            raise ConfigurationError(
                f"Unknown serializer {spec!r}; use one of {sorted(SERIALIZERS)} "
                "or an object with name, dumps() and loads()"
            ) from None
    return spec


class StoredException(Exception):  # noqa: N818 (it stands for the user's exception)
    """Stands in for a task's exception that could not be pickled."""

    def __init__(self, type_name: str, message: str, traceback_text: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name, self.message = type_name, message
        self.traceback_text = traceback_text
        """The original traceback, formatted."""

    @classmethod
    def from_exception(cls, exc: BaseException) -> StoredException:
        """Describe an exception by its type, message and traceback."""
        return cls(
            type(exc).__qualname__,
            str(exc),
            "".join(traceback.format_exception(exc)),
        )


def dump_exception(exc: BaseException) -> bytes:
    """Pickle a task's exception, or a stand-in when it cannot be pickled."""
    try:
        return PICKLE.dumps(exc)
    except Exception:  # noqa: BLE001 (a user's exception may fail to pickle any way)
        return PICKLE.dumps(StoredException.from_exception(exc))
