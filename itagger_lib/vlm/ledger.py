"""The ledger (``vlm_calls``), the cache and the budget (prices: :mod:`.prices`).

Every request is reserved before it is sent: a ``vlm_calls`` row holding its *maximum*
cost (an upper bound on its input tokens, :mod:`itagger_lib.vlm.tokens`, + ``max_tokens`` of
output at the table's prices). The check "spent + reserved + this ≤ budget" and the insert
happen in one transaction (one per batch of reservations) that first takes the ledger
lock — a row of ``settings`` locked with ``SELECT … FOR UPDATE`` on PostgreSQL, and written
first on SQLite (which takes SQLite's single write lock at once, as ``BEGIN IMMEDIATE``
does) — so concurrent tasks and processes cannot overrun a budget. After the response the
row is reconciled to the cost of the tokens actually used.

``Price``, ``get_price`` and ``set_price`` live in :mod:`itagger_lib.vlm.prices`; they are
importable from here too, where notebooks of version 0.1 found them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib.db.dml import insert_ignore
from itagger_lib.db.models import Run, Setting, VLMBatch, VLMCall, utcnow
from itagger_lib.errors import BudgetExceededError, KillSwitchError
from itagger_lib.runs import canonical_json
from itagger_lib.vlm.prices import FREE_PROVIDERS, Price, get_price, set_price

__all__ = [
    "FREE_PROVIDERS",
    "Price",
    "Reservation",
    "cache_key",
    "cached_calls",
    "ensure_lock_row",
    "get_price",
    "ledger",
    "open_keys",
    "release_stale",
    "reserve",
    "reserve_many",
    "set_price",
    "spent",
]

if TYPE_CHECKING:
    import pandas as pd

    from itagger_lib.context import Context

LOCK_KEY = "vlm.ledger_lock"
BUDGET_KEY = "vlm.budget_usd"
KILL_SWITCH_KEY = "vlm.kill_switch"
# Calls that count against budgets: reserved (in flight) at their reservation, the rest at cost.
OPEN = "reserved"
#: Provider batch states whose calls are still open (their answers not yet written).
OPEN_BATCH = ("submitting", "in_progress", "cancelling", "ended")


def cache_key(
    image_sha256: str,
    provider: str,
    model: str,
    prompt_hash: str,
    parameters: Mapping[str, Any],
    repeat_index: int,
) -> str:
    """SHA-256 of (image, provider, model, prompt hash, parameters, repeat index)."""
    payload = canonical_json(
        [image_sha256, provider, model, prompt_hash, dict(parameters), int(repeat_index)]
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _lock(connection: sa.Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(Setting.key).where(Setting.key == LOCK_KEY).with_for_update())
    else:
        connection.execute(sa.update(Setting).where(Setting.key == LOCK_KEY).values(updated_at=utcnow()))


def ensure_lock_row(ctx: Context) -> None:
    """Create the row the budget lock takes, once (``itagger secure-db`` creates it too).

    Only when missing: on a secured Postgres database researchers may lock that row but not
    insert into ``settings``.
    """
    with ctx.engine.begin() as connection:
        if connection.execute(sa.select(Setting.key).where(Setting.key == LOCK_KEY)).first():
            return
        insert_ignore(
            connection,
            Setting,
            [{"key": LOCK_KEY, "value": 0, "updated_at": utcnow(), "updated_by": "itagger"}],
        )


def _committed(connection: sa.Connection, run_id: int | None = None) -> float:
    amount = sa.case((VLMCall.status == OPEN, VLMCall.reserved_usd), else_=VLMCall.cost_usd)
    query = sa.select(sa.func.coalesce(sa.func.sum(amount), 0.0))
    if run_id is not None:
        query = query.where(VLMCall.run_id == run_id)
    return float(connection.execute(query).scalar_one())


def spent(ctx: Context, run_id: int | None = None) -> float:
    """USD spent (and reserved in flight) by one run, or by the whole workspace."""
    with ctx.engine.connect() as connection:
        return _committed(connection, run_id)


# built once: a reservation batch runs these many times a second
_LEDGER_SETTINGS = sa.select(Setting.key, Setting.value).where(Setting.key.in_([BUDGET_KEY, KILL_SWITCH_KEY]))
_INSERT_CALLS = sa.insert(VLMCall).returning(VLMCall.id, sort_by_parameter_order=True)


def _ledger_settings(connection: sa.Connection) -> tuple[Any, Any]:
    """``(vlm.budget_usd, vlm.kill_switch)`` in one query."""
    values: dict[str, Any] = {key: value for key, value in connection.execute(_LEDGER_SETTINGS)}
    return values.get(BUDGET_KEY), values.get(KILL_SWITCH_KEY)


@dataclass
class Reservation:
    """One reservation of ``amount`` USD: a new call (``call``, its row) or more for ``call_id``.

    :func:`reserve_many` sets ``result`` to the call's id, or to the
    :class:`BudgetExceededError` / :class:`KillSwitchError` that refused it.
    """

    amount: float
    call: Mapping[str, Any] | None = None
    call_id: int | None = None
    result: int | Exception | None = None


def reserve_many(
    connection: sa.Connection,
    reservations: list[Reservation],
    *,
    run_id: int | None,
    run_budget: float | None,
) -> None:
    """Check and record ``reservations`` in order, in the caller's transaction.

    The ledger lock is taken once (when a budget applies) and the committed sums are read
    once; each reservation that fits under the run budget and ``vlm.budget_usd`` is
    written, the others are refused. When ``vlm.kill_switch`` is on, all are refused.
    """
    workspace_budget, kill_switch = _ledger_settings(connection)
    budgeted = any(r.amount > 0 for r in reservations) and (
        run_budget is not None or workspace_budget is not None
    )
    if budgeted:
        _lock(connection)  # without a budget there is nothing to serialise
        workspace_budget, kill_switch = _ledger_settings(connection)
    if kill_switch:
        for r in reservations:
            r.result = KillSwitchError(
                "the VLM kill switch is on (setting vlm.kill_switch); no new calls are made — "
                "turn it off with ws.set_setting('vlm.kill_switch', False)"
            )
        return
    workspace_committed = _committed(connection) if budgeted and workspace_budget is not None else 0.0
    run_committed = (
        _committed(connection, run_id) if budgeted and run_budget is not None and run_id is not None else 0.0
    )
    new_calls = []
    for r in reservations:
        if budgeted and r.amount > 0:
            if (
                workspace_budget is not None
                and workspace_committed + r.amount > float(workspace_budget) + 1e-12
            ):
                r.result = BudgetExceededError(
                    f"workspace budget vlm.budget_usd = ${float(workspace_budget):.4f} reached: "
                    f"${workspace_committed:.4f} spent or reserved, the next request may cost up to "
                    f"${r.amount:.4f}; raise the setting to go on"
                )
                continue
            if (
                run_budget is not None
                and run_id is not None
                and run_committed + r.amount > run_budget + 1e-12
            ):
                r.result = BudgetExceededError(
                    f"run budget ${run_budget:.4f} reached: ${run_committed:.4f} spent or reserved, "
                    f"the next request may cost up to ${r.amount:.4f}; pass a larger budget_usd"
                )
                continue
            workspace_committed += r.amount
            run_committed += r.amount
        if r.call_id is not None:
            connection.execute(
                sa.update(VLMCall)
                .where(VLMCall.id == r.call_id)
                .values(reserved_usd=VLMCall.reserved_usd + r.amount, status=OPEN)
            )
            r.result = r.call_id
        else:
            assert r.call is not None
            new_calls.append(r)
    if new_calls:
        now = utcnow()
        rows = [
            {**r.call, "run_id": run_id, "reserved_usd": r.amount, "status": OPEN, "created_at": now}
            for r in new_calls
            if r.call is not None
        ]
        ids = connection.execute(_INSERT_CALLS, rows).scalars().all()
        for r, call_id in zip(new_calls, ids, strict=True):
            r.result = int(call_id)


def reserve(
    ctx: Context,
    amount: float,
    *,
    run_id: int | None,
    run_budget: float | None,
    call: Mapping[str, Any] | None = None,
    call_id: int | None = None,
) -> int:
    """Reserve ``amount`` USD for a new call (``call``: its row) or more for ``call_id``.

    Raises :class:`KillSwitchError` when ``vlm.kill_switch`` is on and
    :class:`BudgetExceededError` when the run or workspace budget would be passed.
    """
    reservation = Reservation(amount, call, call_id)
    with ctx.engine.begin() as connection:
        reserve_many(connection, [reservation], run_id=run_id, run_budget=run_budget)
    if isinstance(reservation.result, Exception):
        raise reservation.result
    assert reservation.result is not None
    return reservation.result


def cached_calls(ctx: Context, keys: list[str]) -> dict[str, int]:
    """Cache key → id of a successful call, for the keys that have one."""
    found: dict[str, int] = {}
    with ctx.engine.connect() as connection:
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = connection.execute(
                sa.select(VLMCall.cache_key, sa.func.max(VLMCall.id))
                .where(VLMCall.cache_key.in_(chunk), VLMCall.status == "ok")
                .group_by(VLMCall.cache_key)
            )
            found.update({key: int(call_id) for key, call_id in rows})
    return found


_ANY_OPEN_BATCH = sa.select(VLMBatch.id).where(VLMBatch.status.in_(OPEN_BATCH)).limit(1)


def open_keys(ctx: Context, keys: list[str]) -> set[str]:
    """The cache keys among ``keys`` of calls waiting in an open provider batch: no run sends
    them again (the batch's answer is collected instead, or it is cancelled)."""
    found: set[str] = set()
    with ctx.engine.connect() as connection:
        if not keys or connection.execute(_ANY_OPEN_BATCH).first() is None:
            return found  # the common case: no batch waiting, nothing to look up per key
        for start in range(0, len(keys), 500):
            rows = connection.execute(
                sa.select(VLMCall.cache_key)
                .join(VLMBatch, VLMBatch.id == VLMCall.batch_id)
                .where(
                    VLMCall.cache_key.in_(keys[start : start + 500]),
                    VLMCall.status == OPEN,
                    VLMBatch.status.in_(OPEN_BATCH),
                )
            )
            found.update(key for (key,) in rows)
    return found


def release_stale(ctx: Context) -> int:
    """Close reservations of runs that are no longer running (killed processes).

    A request that was in flight may have been billed, so its reservation is kept as cost.
    Calls waiting in a provider batch are not stale: :mod:`.batches` settles them.
    """
    with ctx.engine.begin() as connection:
        stale = connection.execute(
            sa.update(VLMCall)
            .where(
                VLMCall.status == OPEN,
                VLMCall.batch_id.is_(None),
                VLMCall.run_id.in_(sa.select(Run.id).where(Run.status != "running")),
            )
            .values(
                status="abandoned",
                cost_usd=VLMCall.reserved_usd,
                finished_at=utcnow(),
                error="the run stopped while this request was in flight; charged at its reservation",
            )
        )
        return int(stale.rowcount or 0)


def ledger(ctx: Context, run_id: int | None = None) -> pd.DataFrame:
    """The ledger rows (without raw responses), newest first."""
    import pandas as pd

    columns = [c for c in VLMCall.__table__.columns if c.name != "raw_response"]
    query = sa.select(*columns).order_by(VLMCall.id.desc())
    if run_id is not None:
        query = query.where(VLMCall.run_id == run_id)
    with ctx.engine.connect() as connection:
        return pd.read_sql(query, connection, index_col="id")
