"""Result serializers: cloudpickle (the default) and JSON, chosen per task by name.

A serializer turns a value into bytes (`dumps`/`loads`); ours also stream to and from a
file (`dump`/`load`), so a large result is written without a second copy in memory
(`durable.store.results`). Unpickling runs code: a database is trusted input, like a
Python file.
"""

from __future__ import annotations

import json
import pickle
import traceback
from typing import IO, Any, Protocol, runtime_checkable

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


class Sink(Protocol):
    """Where `dump` writes: anything with a binary `write` (a file, a `SpooledResult`)."""

    def write(self, data: bytes, /) -> int:
        """Take all of `data`; return its length."""
        ...


class StreamingSerializer(Serializer, Protocol):
    """A serializer that also writes to and reads from a binary file object.

    Optional: a serializer without `dump`/`load` is used through `dumps`/`loads`.
    """

    def dump(self, value: Any, file: Sink) -> None:
        """Serialize a value into `file`, in pieces (never all of it in memory)."""
        ...

    def load(self, file: IO[bytes]) -> Any:
        """Rebuild a value from `dump` output, reading `file` as it goes."""
        ...


class PickleSerializer:
    """cloudpickle: stores almost any Python value, including lambdas and local classes."""

    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        data: bytes = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        return data

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)

    def dump(self, value: Any, file: Sink) -> None:
        # The pickler hands the file 64 KiB frames, and a large bytes-like payload
        # (a big bytes object, a numpy buffer) as itself: nothing is copied whole.
        cloudpickle.dump(value, file, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, file: IO[bytes]) -> Any:
        # Reads a large payload straight into the object it rebuilds (readinto).
        return pickle.load(file)


class JSONSerializer:
    """JSON: readable by any tool, for values made of dicts, lists, str, numbers, bools.

    JSON text is built whole in memory (the C encoder is several times faster than the
    streaming one): return large values from tasks that use the pickle serializer.
    """

    name = "json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, allow_nan=True).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)

    def dump(self, value: Any, file: Sink) -> None:
        file.write(self.dumps(value))

    def load(self, file: IO[bytes]) -> Any:
        return json.loads(file.read())


PICKLE, JSON = PickleSerializer(), JSONSerializer()
SERIALIZERS: dict[str, Serializer] = {PICKLE.name: PICKLE, JSON.name: JSON}
"""The serializers a stored result can name."""


def dump_into(serializer: Serializer, value: Any, file: Sink) -> None:
    """Serialize `value` into `file`, streaming when the serializer can."""
    # getattr, not isinstance on the protocol: this runs for every task result.
    dump = getattr(serializer, "dump", None)
    if dump is not None:
        dump(value, file)
    else:  # a user's serializer with dumps/loads only: one copy in memory
        file.write(serializer.dumps(value))


def load_from(serializer: Serializer, file: IO[bytes]) -> Any:
    """Rebuild a value from `file`, streaming when the serializer can."""
    load = getattr(serializer, "load", None)
    if load is not None:
        return load(file)
    return serializer.loads(file.read())


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

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception pickles its args (one message) by default: give __init__ its three.
        return (type(self), (self.type_name, self.message, self.traceback_text))

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
