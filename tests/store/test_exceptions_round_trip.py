"""A failed task's exception is pickled as its result and must load back on resume:
durable's own errors (whatever their __init__ takes) and the stand-in for an exception
that cannot be pickled."""

from __future__ import annotations

import pickle

import pytest

from durable import errors
from durable.store.serializers import PICKLE, StoredException, dump_exception


@pytest.mark.parametrize(
    "error",
    [
        errors.DurableError("plain"),
        errors.ParameterError("bad n"),
        errors.RunNotFoundError("r1", detail="nothing to restart"),
        errors.FlowChangedError(run_id="r1", flow_name="etl"),
        errors.SerializationError(
            task_name="t",
            type_name="socket",
            serializer="pickle",
            reason="cannot pickle",
        ),
        errors.SchemaTooNewError(path="x.db", found=9, supported=7),
        errors.LeaseLostError("lost"),
        StoredException("Weird", "it broke", "Traceback ..."),
    ],
    ids=lambda e: type(e).__name__,
)
def test_it_round_trips_with_its_message_and_attributes(error: Exception) -> None:
    loaded = PICKLE.loads(PICKLE.dumps(error))

    assert type(loaded) is type(error)
    assert str(loaded) == str(error)
    assert vars(loaded) == vars(error)


def test_an_unpicklable_exception_is_stored_as_a_stand_in_that_loads() -> None:
    class UnpicklableError(Exception):
        def __reduce__(self) -> tuple[object, ...]:
            raise TypeError("no")

    loaded = pickle.loads(dump_exception(UnpicklableError("db lock")))

    assert isinstance(loaded, StoredException)
    assert loaded.type_name.endswith("<locals>.UnpicklableError")
    assert loaded.message == "db lock"
