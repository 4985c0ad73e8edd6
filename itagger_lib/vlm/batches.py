"""Provider batches of VLM runs: polled, collected, cancelled, listed.

:func:`refresh` asks the provider about every open batch (``vlm_batches``) and collects the
ended ones (:mod:`.batch_collect`), in whichever process calls it — a rerun of
``rate_with_vlm(mode="batch")``, ``ws.vlm_batches()`` or ``itagger vlm batches``, hours or
a reboot after the submission. :func:`wait_for` polls until batches end;
:func:`cancel_batches` cancels them (what ran is still collected).

A ``submitting`` batch whose process died is looked up at the provider (by its tag, see
:mod:`.batch_submit`) and adopted, or, not found, marked ``lost`` with its calls closed as
``abandoned`` at their reservation.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib.db.models import Run, VLMBatch, VLMCall, utcnow
from itagger_lib.errors import ProviderError, RetryableError, VLMBatchError
from itagger_lib.runs import close_stale_runs
from itagger_lib.vlm import ledger
from itagger_lib.vlm.batch_collect import Refreshed, collect, finish_if_done
from itagger_lib.vlm.batch_submit import OPEN_BATCH, batch_api, find_unknown, record_state
from itagger_lib.vlm.execute import run_coroutine
from itagger_lib.vlm.registry import get_provider

if TYPE_CHECKING:
    import pandas as pd

    from itagger_lib.context import Context
    from itagger_lib.vlm.base import BatchAPI, Provider

__all__ = ["Refreshed", "batch_table", "cancel_batches", "refresh", "vlm_batches", "wait_for"]

POLL_FIRST_S, POLL_MAX_S = 0.5, 30.0


def _open_rows(
    ctx: Context, provider: str | None, model: str | None, batch_ids: Iterable[int] | None
) -> list[dict[str, Any]]:
    query = sa.select(VLMBatch).where(VLMBatch.status.in_(OPEN_BATCH)).order_by(VLMBatch.id)
    if provider is not None:
        query = query.where(VLMBatch.provider == provider)
    if model is not None:
        query = query.where(VLMBatch.model == model)
    if batch_ids is not None:
        query = query.where(VLMBatch.id.in_(list(batch_ids)))
    with ctx.engine.connect() as connection:
        return [dict(r) for r in connection.execute(query).mappings()]


def _clients(
    rows: list[dict[str, Any]], notes: list[str] | None = None
) -> dict[tuple[str, str, str | None], Provider]:
    """One provider client per (provider, model, base URL) of ``rows``; one that cannot be
    made (no key in this environment) is left out, with a note, or raises without ``notes``."""
    clients: dict[tuple[str, str, str | None], Provider] = {}
    failed: set[tuple[str, str, str | None]] = set()
    for row in rows:
        key = (row["provider"], row["model"], row["base_url"])
        if key in clients or key in failed:
            continue
        options = {"base_url": row["base_url"]} if row["base_url"] else {}
        try:
            clients[key] = get_provider(row["provider"], row["model"], **options)
        except ProviderError as exc:
            if notes is None:
                raise
            failed.add(key)
            notes.append(f"batches of {row['provider']}/{row['model']}: not polled: {exc}")
    return clients


def refresh(
    ctx: Context,
    *,
    provider: str | None = None,
    model: str | None = None,
    batch_ids: Iterable[int] | None = None,
) -> Refreshed:
    """Poll the open batches (of ``provider``/``model``, or ``batch_ids``) and collect the
    ended ones (see the module docstring)."""
    done = Refreshed()
    rows = _open_rows(ctx, provider, model, batch_ids)
    if not rows:
        return done
    close_stale_runs(ctx.engine, kind="vlm")
    ledger.ensure_lock_row(ctx)
    clients = _clients(rows, done.notes)

    async def main() -> None:
        try:
            for row in rows:
                client = clients.get((row["provider"], row["model"], row["base_url"]))
                if client is None:
                    continue
                try:
                    await _refresh_one(ctx, client, batch_api(client), row, done)
                except (ProviderError, RetryableError, VLMBatchError) as exc:
                    done.notes.append(f"batch {row['id']} ({row['provider_batch_id']}): not polled: {exc}")
        finally:
            for client in clients.values():
                await client.aclose()

    run_coroutine(main())
    return done


async def _refresh_one(
    ctx: Context, client: Provider, api: BatchAPI, row: dict[str, Any], done: Refreshed
) -> None:
    if row["status"] == "submitting":
        with ctx.engine.connect() as connection:
            run_status = connection.execute(sa.select(Run.status).where(Run.id == row["run_id"])).scalar()
        if run_status == "running":
            return  # its process is still submitting it
        found = await find_unknown(ctx, api, row["tag"], row["created_at"], row["n_requests"])
        if found is None:
            _lose(ctx, row)
            done.notes.append(
                f"batch {row['id']}: its submission was interrupted and it is not at the provider"
            )
            return
        record_state(ctx, row["id"], found, submitted=True)
        row["provider_batch_id"] = found.id
    state = await api.state(row["provider_batch_id"])
    record_state(ctx, row["id"], state)
    if state.status == "ended":
        items = [] if state.error else await api.results(state)
        await collect(ctx, client, api, row, state, items, done)


def _lose(ctx: Context, row: dict[str, Any]) -> None:
    error = "the process submitting this batch stopped, and the provider has no batch with its tag"
    with ctx.engine.begin() as connection:
        connection.execute(
            sa.update(VLMCall)
            .where(VLMCall.batch_id == row["id"], VLMCall.status == ledger.OPEN)
            .values(
                status="abandoned",
                cost_usd=VLMCall.reserved_usd,
                finished_at=utcnow(),
                error=f"{error}; charged at its reservation, as it may have been sent",
            )
        )
        connection.execute(
            sa.update(VLMBatch).where(VLMBatch.id == row["id"]).values(status="lost", error=error)
        )
    finish_if_done(ctx, row["run_id"])


def wait_for(ctx: Context, batch_ids: Iterable[int] | None, wait_s: float, **filters: Any) -> Refreshed:
    """Poll (every 0.5 s, slowing to 30 s) until ``batch_ids`` (or every open batch matching
    ``filters``) are collected or ``wait_s`` seconds have passed; what was collected."""
    ids = None if batch_ids is None else list(batch_ids)
    total = Refreshed()
    deadline = time.monotonic() + wait_s
    pause = POLL_FIRST_S
    while True:
        step = refresh(ctx, batch_ids=ids, **filters)
        total.collected += step.collected
        total.succeeded += step.succeeded
        total.failed += step.failed
        total.spend_usd += step.spend_usd
        total.notes += step.notes
        left = deadline - time.monotonic()
        if not _open_rows(ctx, filters.get("provider"), filters.get("model"), ids) or left <= 0:
            return total
        time.sleep(min(pause, left))
        pause = min(POLL_MAX_S, pause * 1.5)


def batch_table(ctx: Context) -> pd.DataFrame:
    """Every provider batch, newest first: status, counts, reserved and spent USD, times."""
    import pandas as pd

    sums = (
        sa.select(
            VLMCall.batch_id,
            sa.func.sum(sa.case((VLMCall.status == ledger.OPEN, VLMCall.reserved_usd), else_=0.0)).label(
                "reserved_usd"
            ),
            sa.func.sum(sa.case((VLMCall.status != ledger.OPEN, VLMCall.cost_usd), else_=0.0)).label(
                "cost_usd"
            ),
        )
        .group_by(VLMCall.batch_id)
        .subquery()
    )
    columns = [c for c in VLMBatch.__table__.columns if c.name not in ("details", "tag")]
    query = (
        sa.select(*columns, sums.c.reserved_usd, sums.c.cost_usd)
        .outerjoin(sums, sums.c.batch_id == VLMBatch.id)
        .order_by(VLMBatch.id.desc())
    )
    with ctx.engine.connect() as connection:
        return pd.read_sql(query, connection, index_col="id")


def vlm_batches(ctx: Context, poll: bool = True) -> pd.DataFrame:
    """The provider batches of this workspace, newest first; with ``poll`` the open ones are
    asked about first and the ended ones collected (ratings, ledger rows at batch prices)."""
    if poll:
        refresh(ctx)
    return batch_table(ctx)


def cancel_batches(ctx: Context, batch_ids: Iterable[int] | None = None) -> pd.DataFrame:
    """Cancel open provider batches (``batch_ids``, default every open one); returns the table.

    What already ran is still collected (and billed); the rest ends as cancelled, costs
    nothing and is asked again by the next run. Raises :class:`VLMBatchError` for an id
    that is not an open, submitted batch.
    """
    ids = None if batch_ids is None else [int(i) for i in batch_ids]
    rows = [r for r in _open_rows(ctx, None, None, ids) if r["status"] == "in_progress"]
    if ids is not None:
        unknown = sorted(set(ids) - {r["id"] for r in rows})
        if unknown:
            raise VLMBatchError(
                f"batch(es) {', '.join(map(str, unknown))}: not open at a provider (see ws.vlm_batches())"
            )
    clients = _clients(rows)

    async def main() -> None:
        try:
            by_client: dict[Any, list[dict[str, Any]]] = defaultdict(list)
            for row in rows:
                by_client[(row["provider"], row["model"], row["base_url"])].append(row)
            for key, group in by_client.items():
                api = batch_api(clients[key])
                states = await asyncio.gather(*(api.cancel(r["provider_batch_id"]) for r in group))
                for row, state in zip(group, states, strict=True):
                    record_state(ctx, row["id"], state)
        finally:
            for client in clients.values():
                await client.aclose()

    run_coroutine(main())
    return batch_table(ctx)
