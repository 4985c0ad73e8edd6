"""The run's ledger writes, in group commits.

Tasks queue operations — reserve a request, finish a call (its row, ratings and failures),
release an unsent reservation — and what is queued is written in one transaction: first
the finishes and releases (which free budget), then the reservations in order under the
ledger lock. A reservation is written at the next turn of the event loop; a finish waits
for the next reservation (the finishing task's next job makes one at once) or at most
``FINISH_DELAY_S``. So a call costs one share of a transaction, not two of its own, and
waits only for its own reservation.

The transaction runs on the event loop's thread, on one connection held for the run. A
writer thread was measured slower (``benchmarks/vlm.py``, 2 cores): every statement
releases and re-takes the GIL, and while the event loop is busy each re-take waits for the
interpreter's switch interval (5 ms), so a reservation took 5–20 ms instead of 1–4 ms.

Order is kept: a task's next reservation is queued after its last finish, so a committed
state never holds more open reservations than requests in flight, and a killed process
leaves at most ``concurrency`` of them (closed as ``abandoned`` by the next run).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib.db.models import Rating, VLMCall
from itagger_lib.runs import record_failures
from itagger_lib.vlm import ledger

if TYPE_CHECKING:
    from itagger_lib.context import Context

FINISH_DELAY_S = 0.02  # the longest a finished call waits to be written

# columns a finish sets, bound under other names (SQLAlchemy reserves the column names)
_FINISHED = (
    "status",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cost_usd",
    "latency_ms",
    "attempts",
    "error",
    "raw_response",
    "rationale",
    "finished_at",
)
_FINISH = (
    sa.update(VLMCall)
    .where(VLMCall.id == sa.bindparam("b_id"))
    .values({name: sa.bindparam(f"b_{name}") for name in _FINISHED})
)


@dataclass
class Finish:
    """A finished call: its ledger values, its ratings, failures to record, ratings to replace."""

    call_id: int | None
    values: Mapping[str, Any] = field(default_factory=dict)
    ratings: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str, int | None, str]] = field(default_factory=list)
    replace: Mapping[str, Any] | None = None


@dataclass
class _Op:
    reservation: ledger.Reservation | None = None
    finish: Finish | None = None
    release: int | None = None
    future: asyncio.Future[int] | None = None


class LedgerWriter:
    """Group-committed ledger writes of one run (see the module docstring).

    Create it inside the running event loop; ``close()`` writes what is still queued.
    """

    def __init__(self, ctx: Context, *, run_id: int, run_budget: float | None) -> None:
        self.ctx, self.run_id, self.run_budget = ctx, run_id, run_budget
        self.error: Exception | None = None
        self.batches = 0
        self._loop = asyncio.get_running_loop()
        self._pending: list[_Op] = []
        self._connection: sa.Connection | None = None
        self._soon: asyncio.Handle | None = None
        self._later: asyncio.TimerHandle | None = None

    async def reserve(
        self, amount: float, *, call: Mapping[str, Any] | None = None, call_id: int | None = None
    ) -> int:
        """The call's id once ``amount`` is reserved; raises what refused it."""
        if self.error is not None:
            raise self.error
        future: asyncio.Future[int] = self._loop.create_future()
        self._put(_Op(reservation=ledger.Reservation(amount, call, call_id), future=future))
        return await future

    def finish(self, finish: Finish) -> None:
        """Queue a finished call; written with the next batch (errors surface on ``close``)."""
        self._put(_Op(finish=finish))

    def release(self, call_id: int) -> None:
        """Drop a reservation whose request was never sent."""
        self._put(_Op(release=call_id))

    def close(self) -> None:
        """Write what is queued and let the connection go; raises the first write error."""
        try:
            self._flush()
        finally:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
        if self.error is not None:
            raise self.error

    def _put(self, op: _Op) -> None:
        self._pending.append(op)
        if op.reservation is not None:
            if self._soon is None:
                self._soon = self._loop.call_soon(self._flush)
        elif self._soon is None and self._later is None:
            self._later = self._loop.call_later(FINISH_DELAY_S, self._flush)

    def _flush(self) -> None:
        for handle in (self._soon, self._later):
            if handle is not None:
                handle.cancel()
        self._soon = self._later = None
        ops, self._pending = self._pending, []
        if not ops:
            return
        self.batches += 1
        self._batch(ops)
        self._resolve(ops)

    def _batch(self, ops: list[_Op]) -> None:
        try:
            self._write(ops)
        except Exception as exc:
            # one bad operation must not fail the others: write them one by one
            for op in ops if len(ops) > 1 else []:
                if op.reservation is not None:
                    op.reservation.result = None  # its id was rolled back
                try:
                    self._write([op])
                except Exception as single:
                    self._fail(op, single)
            if len(ops) == 1:
                self._fail(ops[0], exc)

    @staticmethod
    def _resolve(ops: list[_Op]) -> None:
        for op in ops:
            if op.future is None or op.future.done():  # done: the waiting task was cancelled
                continue
            assert op.reservation is not None
            result = op.reservation.result
            if isinstance(result, Exception):
                op.future.set_exception(result)
            else:
                assert result is not None
                op.future.set_result(result)

    def _fail(self, op: _Op, exc: Exception) -> None:
        self.error = self.error or exc  # later reservations raise it: no more requests
        if op.reservation is not None:
            op.reservation.result = exc

    def _write(self, ops: list[_Op]) -> None:
        finishes = [o.finish for o in ops if o.finish is not None]
        releases = [o.release for o in ops if o.release is not None]
        reservations = [o.reservation for o in ops if o.reservation is not None]
        if self._connection is None:
            self._connection = self.ctx.engine.connect()  # held for the run: no pool round trip per batch
        connection = self._connection
        with connection.begin():
            if releases:
                connection.execute(
                    sa.delete(VLMCall).where(VLMCall.id.in_(releases), VLMCall.status == ledger.OPEN)
                )
            write_finishes(connection, self.run_id, finishes)
            if reservations:
                ledger.reserve_many(connection, reservations, run_id=self.run_id, run_budget=self.run_budget)


def write_finishes(connection: sa.Connection, run_id: int, finishes: list[Finish]) -> None:
    """Write finished calls of run ``run_id`` in the caller's transaction: their ledger
    values, their ratings (replacing the old ones where asked) and their failures."""
    updates = [
        {"b_id": f.call_id, **{f"b_{k}": f.values.get(k) for k in _FINISHED}}
        for f in finishes
        if f.call_id is not None
    ]
    if updates:
        connection.execute(_FINISH, updates)
    for f in finishes:
        if f.replace is not None and f.ratings:
            connection.execute(
                sa.delete(Rating).where(
                    *(getattr(Rating, k) == v for k, v in f.replace.items()),
                    Rating.attribute.in_([r["attribute"] for r in f.ratings]),
                )
            )
    ratings = [r for f in finishes for r in f.ratings]
    if ratings:
        connection.execute(sa.insert(Rating), ratings)
    record_failures(connection, run_id, [x for f in finishes for x in f.failures])
