"""Numbered schema steps for one database, in the style of sqlite-utils' ``Migrations``.

Each database orbench writes keeps its own ordered list: the local DuckDB file
(``bench.store.migrations``) and the team's PostgreSQL log (``bench.store.team.schema``).
The runner semantics are the same for both: missing steps are applied in order, each in
one transaction together with its row in the bookkeeping table, so a crash mid-step leaves
it unapplied; a database that names a step this code does not know was written by a newer
orbench and is refused with ``SchemaTooNew`` instead of guessed at.

    duckdb_steps = Migrations("orbench", DuckDBSteps())

    @duckdb_steps()
    def m001_create_runs(con): ...

What differs per database (how to open a transaction, the bookkeeping SQL) is a small
``StepsBackend``; the list, the order and the refusal live here once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from bench.errors import SchemaTooNew

C = TypeVar("C")
C_contra = TypeVar("C_contra", contravariant=True)


class StepsBackend(Protocol[C_contra]):
    """How one kind of database keeps its list of applied steps."""

    def applied(self, con: C_contra) -> list[str]:
        """Step names recorded in the database (creating the bookkeeping table if needed)."""
        ...

    def transaction(self, con: C_contra) -> AbstractContextManager[Any]:
        """One transaction: committed on exit, rolled back on an exception."""
        ...

    def record(self, con: C_contra, name: str) -> None:
        """Record a step as applied (inside its transaction)."""
        ...


class Migrations(Generic[C]):
    """An ordered list of schema steps for one database; ``@steps()`` registers one."""

    def __init__(self, name: str, backend: StepsBackend[C]) -> None:
        self.name = name
        self.backend = backend
        self.steps: list[Callable[[C], None]] = []

    def __call__(self) -> Callable[[Callable[[C], None]], Callable[[C], None]]:
        def register(fn: Callable[[C], None]) -> Callable[[C], None]:
            if fn.__name__ in self.names():
                raise ValueError(f"{self.name}: migration {fn.__name__} registered twice")
            if self.steps and fn.__name__ <= self.steps[-1].__name__:
                raise ValueError(f"{self.name}: migration {fn.__name__} does not sort after "
                                 f"{self.steps[-1].__name__}")
            self.steps.append(fn)
            return fn

        return register

    def __iter__(self) -> Iterator[Callable[[C], None]]:
        return iter(self.steps)

    def names(self) -> list[str]:
        return [s.__name__ for s in self.steps]

    def check_not_newer(self, applied: list[str], where: Path | str) -> None:
        """Refuse a database that names steps this code does not know."""
        unknown = sorted(set(applied) - set(self.names()))
        if unknown:
            raise SchemaTooNew(f"{where} was written by a newer orbench (migration {unknown[-1]}); upgrade orbench")

    def pending(self, con: C, where: Path | str = "database") -> list[str]:
        """Steps not applied yet (SchemaTooNew for a newer database)."""
        applied = self.backend.applied(con)
        self.check_not_newer(applied, where)
        return [n for n in self.names() if n not in applied]

    def apply(self, con: C, where: Path | str = "database") -> list[str]:
        """Apply the missing steps in order, one transaction each; return the names applied now."""
        applied = self.backend.applied(con)
        self.check_not_newer(applied, where)
        done: list[str] = []
        for step in self.steps:
            if step.__name__ in applied:
                continue
            with self.backend.transaction(con):
                step(con)
                self.backend.record(con, step.__name__)
            done.append(step.__name__)
        return done
