"""Fixtures that start things on demand and stop every one of them afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ParamSpec, Protocol, TypeVar


class Stoppable(Protocol):
    def stop(self) -> None: ...


P = ParamSpec("P")
T = TypeVar("T", bound=Stoppable)


def stopped_at_teardown(make: Callable[P, T]) -> Iterator[Callable[P, T]]:
    """For ``yield from`` in a fixture: hands the test ``make``, then stops all it made, in
    the order made, even when the test failed."""
    made: list[T] = []

    def start(*args: P.args, **kwargs: P.kwargs) -> T:
        thing = make(*args, **kwargs)
        made.append(thing)
        return thing

    try:
        yield start
    finally:
        for thing in made:
            thing.stop()
