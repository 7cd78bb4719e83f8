"""Caching and targets: run this twice and the second run reuses both results.

Run it:      durable run examples/caching.py --param city=Oslo
Run it again within the hour: `fetch_forecast` is Cached (its body does not run), and
`summarize` finds its target file and is Cached too. Another city misses the cache, because
the cache validator compares parameters. Cached values live in the database, so they
survive restarts and crashes.
"""

from __future__ import annotations

from datetime import timedelta

from durable import Flow, Parameter, context, task
from durable.engine.cache_validators import all_parameters


@task(cache_for=timedelta(hours=1), cache_validator=all_parameters)
def fetch_forecast(city: str) -> list[float]:
    """Pretend to call a slow weather service (cached for an hour per city)."""
    context.logger.info("Calling the weather service for %s", city)
    return [float(len(city) + hour % 5) for hour in range(24)]


@task(target="{flow_name}/{today}/{city}.json", serializer="json")
def summarize(city: str, temperatures: list[float]) -> dict[str, float]:
    """Summarize a day; the result is also written to results/forecast/DAY/CITY.json."""
    return {"min": min(temperatures), "max": max(temperatures)}


with Flow("forecast") as flow:
    city = Parameter("city", default="Lisbon")
    summary = summarize(city, fetch_forecast(city))


if __name__ == "__main__":
    state = flow.run()
    print(state.result[summary].name, state.result[summary].result)
