"""Collecting an ended provider batch: its results written as interactive answers are.

Each result is read as the interactive answer would be: usage (cache reads and writes
included) priced at the batch rates, the answer validated against the codebook, a refusal
recorded; an invalid answer gets one repair request in a new batch of the same run, as an
interactive one gets one repair; an errored, expired or cancelled request is a failure that
costs nothing (the providers do not bill them) and is asked again by the next run. The
calls, ratings and failures of a batch are written in one transaction, and a run whose
batches are all collected is finished with its counts (:func:`finish_if_done`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib.codebook import resolve_codebook
from itagger_lib.db.models import Image, Run, VLMBatch, VLMCall, utcnow
from itagger_lib.errors import VLMBatchError, VLMResponseError
from itagger_lib.runs import finish_run, update_run
from itagger_lib.vlm import ledger
from itagger_lib.vlm.answers import max_cost, rating_rows, response_cost
from itagger_lib.vlm.batch_submit import OPEN_BATCH, Images, Pending, send
from itagger_lib.vlm.plan import request_for
from itagger_lib.vlm.prices import get_price
from itagger_lib.vlm.prompts import build_prompt, parse_answer, repair_prompt
from itagger_lib.vlm.secrets import all_secrets, redact
from itagger_lib.vlm.writer import Finish, write_finishes

if TYPE_CHECKING:
    from itagger_lib.context import Context
    from itagger_lib.vlm.base import BatchAPI, BatchItem, BatchState, Provider

__all__ = ["Refreshed", "collect", "finish_if_done"]


@dataclass
class Refreshed:
    """What a refresh did: calls collected (answered or failed), their spend, notes."""

    collected: int = 0
    succeeded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    spend_usd: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class _Run:
    """What collecting the calls of one run needs: its prompt, codebook, price, rater."""

    run_id: int
    parameters: dict[str, Any]

    def load(self, ctx: Context, row: dict[str, Any]) -> None:
        p = self.parameters
        self.codebook = resolve_codebook(ctx, int(p["codebook_id"]))
        self.prompt = build_prompt(self.codebook, p["attributes"], rationale=bool(p.get("rationale")))
        if self.prompt.hash != p["prompt_hash"]:
            raise VLMBatchError(
                f"batch {row['id']}: the prompt of run {self.run_id} cannot be rebuilt (its codebook or "
                "this version's template differs); its answers are kept raw and not validated"
            )
        options = {"base_url": row["base_url"]} if row["base_url"] else {}
        self.price = get_price(ctx, row["provider"], row["model"], options)
        self.rater = f"vlm:{row['provider']}/{row['model']}"
        self.force = bool(p.get("force"))


async def collect(
    ctx: Context,
    client: Provider,
    api: BatchAPI,
    row: dict[str, Any],
    state: BatchState,
    items: list[BatchItem],
    done: Refreshed,
) -> None:
    """Write the results of ended batch ``row``; send repairs of invalid answers."""
    with ctx.engine.connect() as connection:
        calls = [
            dict(c)
            for c in connection.execute(
                sa.select(VLMCall).where(VLMCall.batch_id == row["id"], VLMCall.status == ledger.OPEN)
            ).mappings()
        ]
        parameters = connection.execute(sa.select(Run.parameters).where(Run.id == row["run_id"])).scalar_one()
    run = _Run(row["run_id"], dict(parameters))
    run.load(ctx, row)
    secrets = all_secrets()
    by_id = {item.custom_id: item for item in items}
    mine = Refreshed()  # added to ``done`` once this process has written the batch
    finishes: list[Finish] = []
    repairs: list[tuple[dict[str, Any], str]] = []
    missing = state.error or f"no result for this request (the batch ended {state.provider_status})"
    for call in calls:
        item = by_id.get(call["cache_key"])
        tokens = [
            call[k] or 0
            for k in ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens")
        ]
        cost, raws = float(call["cost_usd"] or 0.0), [call["raw_response"]] if call["raw_response"] else []
        values: dict[str, Any] = {"attempts": call["attempts"] or 0, "finished_at": utcnow()}
        outcome: dict[str, Any]
        overrun = None
        if item is None or item.response is None:
            outcome = {"status": "failed", "error": (item.error if item is not None else None) or missing}
        else:
            response = item.response
            tokens = [
                tokens[0] + response.input_tokens,
                tokens[1] + response.output_tokens,
                tokens[2] + response.cached_input_tokens,
                tokens[3] + response.cache_write_tokens,
            ]
            if response.usage_reported:
                cost += response_cost(run.price, response, batch=True)
            else:  # nothing to bill by: the reservation is taken as the cost
                cost = max(cost, call["reserved_usd"])
            raws.append(response.raw)
            values["attempts"] += 1
            if cost > call["reserved_usd"] * (1 + 1e-9) + 1e-12:
                overrun = (
                    f"the provider reported usage costing ${cost:.6f}, above the ${call['reserved_usd']:.6f} "
                    "reserved; check the model's price and its image-token formula"
                )
            if response.refusal:
                outcome = {"status": "refused", "error": f"the model refused: {response.refusal}"}
            else:
                try:
                    answer, rationale = parse_answer(response.text, run.codebook, run.prompt.attributes)
                    outcome = {"status": "ok", "values": answer, "rationale": rationale}
                except VLMResponseError as exc:
                    outcome = {"status": "failed", "error": f"invalid answer after repair: {exc}"}
                    if not row["repair"]:
                        repair = {**call, "tokens": tokens, "cost": cost, "raws": raws, "problem": str(exc)}
                        repairs.append((repair, response.text or ""))
                        continue
        error = redact(outcome.get("error"), *secrets)
        label = f"image {call['image_id']} ({call['image_sha256'][:12]}) repeat {call['repeat_index']}"
        failures = [] if outcome["status"] == "ok" else [(label, call["image_id"], error or "")]
        if overrun:
            failures.append((label, call["image_id"], overrun))
        raw = raws[0] if len(raws) == 1 else ("[" + ",".join(raws) + "]" if raws else None)
        values.update(
            status=outcome["status"],
            input_tokens=tokens[0],
            output_tokens=tokens[1],
            cached_input_tokens=tokens[2],
            cache_write_tokens=tokens[3],
            cost_usd=cost,
            error=error,
            raw_response=redact(raw, *secrets),
            rationale=redact(outcome.get("rationale"), *secrets),
        )
        ratings = []
        if outcome["status"] == "ok":
            ratings = rating_rows(
                run.codebook,
                run.rater,
                run.run_id,
                call["id"],
                call["image_id"],
                call["repeat_index"],
                outcome["values"],
            )
            mine.succeeded += 1
        else:
            mine.failed.append((label, error or ""))
        old = None
        if run.force:
            old = {
                "image_id": call["image_id"],
                "rater": run.rater,
                "repeat_index": call["repeat_index"],
                "codebook_id": run.codebook.id,
            }
        finishes.append(Finish(call["id"], values, ratings=ratings, failures=failures, replace=old))
        mine.collected += 1
        mine.spend_usd += cost
    ok = sum(1 for f in finishes if f.values["status"] == "ok")
    with ctx.engine.begin() as connection:
        # claimed first: of two processes collecting the same batch, one writes its results
        claimed = connection.execute(
            sa.update(VLMBatch)
            .where(VLMBatch.id == row["id"], VLMBatch.status.in_(OPEN_BATCH))
            .values(status="collected", collected_at=utcnow(), n_succeeded=ok, n_failed=len(finishes) - ok)
        )
        if claimed.rowcount != 1:
            return  # another process has collected it
        write_finishes(connection, run.run_id, finishes)
        for call, _ in repairs:
            connection.execute(
                sa.update(VLMCall)
                .where(VLMCall.id == call["id"])
                .values(
                    input_tokens=call["tokens"][0],
                    output_tokens=call["tokens"][1],
                    cached_input_tokens=call["tokens"][2],
                    cache_write_tokens=call["tokens"][3],
                    cost_usd=call["cost"],
                    attempts=(call["attempts"] or 0) + 1,
                    raw_response=redact(call["raws"][-1], *secrets),
                    error=redact(f"invalid answer ({call['problem']}); a repair was sent", *secrets),
                )
            )
    done.collected += mine.collected
    done.succeeded += mine.succeeded
    done.failed += mine.failed
    done.spend_usd += mine.spend_usd
    if repairs:
        await _repair(ctx, client, api, row, run, repairs, done)
    finish_if_done(ctx, run.run_id)


async def _repair(
    ctx: Context,
    client: Provider,
    api: BatchAPI,
    row: dict[str, Any],
    run: _Run,
    repairs: list[tuple[dict[str, Any], str]],
    done: Refreshed,
) -> None:
    """Send one repair request for each invalid answer, as a new batch of the same run."""
    params = dict(repairs[0][0]["parameters"])
    with ctx.engine.connect() as connection:
        ext = dict(
            connection.execute(
                sa.select(Image.id, Image.ext).where(Image.id.in_([c["image_id"] for c, _ in repairs]))
            ).all()
        )
    images = Images(ctx.store, int(params["long_side"]))
    pending = []
    for call, answer in repairs:
        image = await images.get(call["image_sha256"], ext[call["image_id"]], int(params["long_side"]))
        request = request_for(
            run.prompt,
            params,
            image.jpeg,
            image.width,
            image.height,
            image.base64,
            repeat_index=call["repeat_index"],
        )
        request = replace(request, prompt=repair_prompt(run.prompt, answer, [call["problem"]]))
        amount = max_cost(client, row["provider"], run.price, request, batch=True)
        pending.append(
            Pending(call["cache_key"], api.entry(call["cache_key"], request), amount, call_id=call["id"])
        )
    budget = run.parameters.get("budget_usd")
    sent = await send(
        ctx,
        api,
        pending,
        run_id=run.run_id,
        provider=row["provider"],
        model=row["model"],
        base_url=row["base_url"],
        run_budget=None if budget is None else float(budget),
        repair=True,
    )
    if sent.refused:
        with ctx.engine.begin() as connection:
            connection.execute(
                sa.update(VLMCall)
                .where(VLMCall.id.in_([p.call_id for p in sent.refused]), VLMCall.status == ledger.OPEN)
                .values(
                    status="failed", finished_at=utcnow(), error=f"invalid answer; no repair: {sent.stopped}"
                )
            )
    if sent.stopped:
        done.notes.append(f"repairs of batch {row['id']}: {sent.stopped}")


def finish_if_done(ctx: Context, run_id: int | None) -> None:
    """Finish a waiting run whose batches are all collected, with its counts."""
    if run_id is None:
        return
    with ctx.engine.connect() as connection:
        run = connection.execute(sa.select(Run.status, Run.details).where(Run.id == run_id)).one()
        still_open = connection.execute(
            sa.select(sa.func.count()).where(VLMBatch.run_id == run_id, VLMBatch.status.in_(OPEN_BATCH))
        ).scalar_one()
        counts = dict(
            connection.execute(
                sa.select(VLMCall.status, sa.func.count())
                .where(VLMCall.run_id == run_id)
                .group_by(VLMCall.status)
            ).all()
        )
    if still_open:
        return
    ok = int(counts.get("ok", 0)) + int((run.details or {}).get("cache_hits", 0))
    failed = sum(int(n) for status, n in counts.items() if status in ("failed", "refused", "abandoned"))
    if run.status == "waiting":
        finish_run(ctx.engine, run_id, n_done=ok, n_failed=failed)
    else:
        update_run(ctx.engine, run_id, n_done=ok, n_failed=failed)
