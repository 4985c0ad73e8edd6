"""Model prices: the shipped table, workspace prices over it, local servers at 0.

A model's price is, in this order:

1. the workspace's own row in ``vlm_prices`` (``set_price``, ``itagger vlm prices set``);
2. ``0`` for a local OpenAI-compatible server (a ``base_url`` that is not the provider's
   own, :func:`itagger_lib.vlm.registry.local_server`), with a note saying so;
3. the shipped table ``itagger_lib/data/vlm_prices.csv`` (dated, with the page each price
   was read from), by model name or a dated snapshot of it (``claude-haiku-4-5-20251001``);
4. none: :class:`~itagger_lib.errors.PriceUnknownError`, as a budget cannot be kept.

The shipped table is read from the package, not copied into the database, so a new
version's prices reach every workspace; a workspace row always wins. A price carries the
rates of prompt-cache reads and writes and of the providers' batch APIs; where the table
has no such rate the standard one is used (see :meth:`Price.rates` for a batch's cache
rates). Prices read more than :data:`STALE_DAYS` days ago are flagged.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib.db.models import VLMPrice, utcnow
from itagger_lib.errors import ArgumentError, PriceUnknownError
from itagger_lib.vlm.registry import local_server

if TYPE_CHECKING:
    import pandas as pd

    from itagger_lib.context import Context

__all__ = [
    "FREE_PROVIDERS",
    "STALE_DAYS",
    "Price",
    "Rates",
    "get_price",
    "price_rows",
    "price_table",
    "set_price",
    "shipped_prices",
    "stale_notes",
]

STALE_DAYS = 90
FREE_PROVIDERS = frozenset({"stub"})
RATE_COLUMNS = (
    "input_per_mtok",
    "output_per_mtok",
    "cached_input_per_mtok",
    "cache_write_per_mtok",
    "batch_input_per_mtok",
    "batch_output_per_mtok",
)
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8})$")


@dataclass(frozen=True)
class Rates:
    """USD per million tokens of one way of sending: input, output, cache reads and writes."""

    input: float
    output: float
    cached_input: float
    cache_write: float


@dataclass(frozen=True)
class Price:
    """A model's rates in USD per million tokens, and where they come from.

    ``cached_input_per_mtok`` (a prompt-cache read) and ``cache_write_per_mtok`` default to
    the input rate; the batch rates to the standard ones. ``origin`` is ``workspace``,
    ``shipped``, ``local`` (a local server, at 0) or ``free`` (the stub); ``read_on`` the
    date the price was read (or set), ``source`` the page it was read from.
    """

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    batch_input_per_mtok: float | None = None
    batch_output_per_mtok: float | None = None
    origin: str = "workspace"
    read_on: date | None = None
    source: str = ""
    note: str = ""

    def rates(self, *, batch: bool = False) -> Rates:
        """The rates of an interactive request, or (``batch``) of one in a provider batch.

        In a batch, cache writes get the batch discount (Anthropic documents that its cache
        multipliers stack with it; OpenAI bills writes as input), while cache reads cost the
        lower of the cached and the batch input rate: whether both discounts apply to a read
        is not documented alike by both providers, so the dearer reading is kept.
        """
        cached = self.input_per_mtok if self.cached_input_per_mtok is None else self.cached_input_per_mtok
        write = self.input_per_mtok if self.cache_write_per_mtok is None else self.cache_write_per_mtok
        if not batch:
            return Rates(self.input_per_mtok, self.output_per_mtok, cached, write)
        batch_input = _or(self.batch_input_per_mtok, self.input_per_mtok)
        factor = batch_input / self.input_per_mtok if self.input_per_mtok else 1.0
        return Rates(
            batch_input,
            _or(self.batch_output_per_mtok, self.output_per_mtok),
            min(cached, batch_input),
            write * factor,
        )

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
        *,
        batch: bool = False,
    ) -> float:
        """USD for a response's usage; ``input_tokens`` counts every input token, the cached
        reads and writes among them included."""
        rates = self.rates(batch=batch)
        plain = max(0, input_tokens - cached_input_tokens - cache_write_tokens)
        return (
            plain * rates.input
            + cached_input_tokens * rates.cached_input
            + cache_write_tokens * rates.cache_write
            + output_tokens * rates.output
        ) / 1e6

    def bound(self, input_tokens: int, output_tokens: int, *, batch: bool = False) -> float:
        """The most ``input_tokens`` and ``output_tokens`` can cost, however many of the
        input tokens turn out to be cache reads or writes (the reservation of a request)."""
        rates = self.rates(batch=batch)
        dearest = max(rates.input, rates.cached_input, rates.cache_write)
        return (input_tokens * dearest + output_tokens * rates.output) / 1e6

    def age_days(self, today: date | None = None) -> int | None:
        """Days since the price was read (``None`` when it has no date)."""
        if self.read_on is None:
            return None
        return ((today or datetime.now(UTC).date()) - self.read_on).days

    @property
    def has_batch_rates(self) -> bool:
        return self.batch_input_per_mtok is not None and self.batch_output_per_mtok is not None


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _number(name: str, value: object, where: str, *, optional: bool = False) -> float | None:
    if value is None or value == "":
        if optional:
            return None
        raise ArgumentError(f"price {name} of {where} is missing")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ArgumentError(f"price {name} of {where} must be a number >= 0, got {value!r}") from None
    if isinstance(value, bool) or number < 0 or not math.isfinite(number):
        raise ArgumentError(f"price {name} of {where} must be a number >= 0, got {value!r}")
    return number


@functools.cache
def shipped_prices() -> dict[tuple[str, str], Price]:
    """The shipped table (``itagger_lib/data/vlm_prices.csv``) by ``(provider, model)``."""
    text = resources.files("itagger_lib").joinpath("data/vlm_prices.csv").read_text("utf-8")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    table: dict[tuple[str, str], Price] = {}
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        where = f"{row['provider']}/{row['model']} in the shipped table"
        rates = {
            column: _number(column, row[key], where, optional=column not in RATE_COLUMNS[:2])
            for column, key in zip(
                RATE_COLUMNS,
                ("input", "output", "cached_input", "cache_write", "batch_input", "batch_output"),
                strict=True,
            )
        }
        table[(row["provider"], row["model"])] = Price(
            **rates,  # type: ignore[arg-type]
            origin="shipped",
            read_on=date.fromisoformat(row["read_on"]),
            source=row["source"],
            note=row["note"],
        )
    return table


def _shipped(provider: str, model: str) -> Price | None:
    table = shipped_prices()
    if (provider, model) in table:
        return table[(provider, model)]
    snapshot = _SNAPSHOT.search(model)  # a dated snapshot of a listed model
    if snapshot is not None:
        return table.get((provider, model[: snapshot.start()]))
    return None


def set_price(
    ctx: Context,
    provider: str,
    model: str,
    input_per_mtok: float,
    output_per_mtok: float,
    *,
    cached_input_per_mtok: float | None = None,
    cache_write_per_mtok: float | None = None,
    batch_input_per_mtok: float | None = None,
    batch_output_per_mtok: float | None = None,
    source: str | None = None,
) -> None:
    """Set (or change) a model's price in this workspace, in USD per million tokens.

    It overrides the shipped table. ``cached_input_per_mtok``/``cache_write_per_mtok``:
    prompt-cache reads and writes (default the input price); ``batch_*``: the provider's
    batch API (default the standard prices); ``source``: where the price was read.
    """
    where = f"{provider}/{model}"
    values: dict[str, Any] = {
        "input_per_mtok": _number("input_per_mtok", input_per_mtok, where),
        "output_per_mtok": _number("output_per_mtok", output_per_mtok, where),
    }
    for name, value in (
        ("cached_input_per_mtok", cached_input_per_mtok),
        ("cache_write_per_mtok", cache_write_per_mtok),
        ("batch_input_per_mtok", batch_input_per_mtok),
        ("batch_output_per_mtok", batch_output_per_mtok),
    ):
        values[name] = _number(name, value, where, optional=True)
    values.update(source=source, updated_at=utcnow())
    with ctx.engine.begin() as connection:
        updated = connection.execute(
            sa.update(VLMPrice).where(VLMPrice.provider == provider, VLMPrice.model == model).values(**values)
        )
        if updated.rowcount == 0:
            connection.execute(sa.insert(VLMPrice).values(provider=provider, model=model, **values))


def _workspace_rows(ctx: Context) -> dict[tuple[str, str], Price]:
    with ctx.engine.connect() as connection:
        rows = connection.execute(sa.select(VLMPrice)).mappings().all()
    return {(row["provider"], row["model"]): _from_row(row) for row in rows}


def _from_row(row: Any) -> Price:
    updated = row["updated_at"]
    return Price(
        **{column: row[column] for column in RATE_COLUMNS},
        origin="workspace",
        read_on=updated.date() if updated is not None else None,
        source=row["source"] or "",
    )


def get_price(
    ctx: Context, provider: str, model: str, provider_options: Mapping[str, Any] | None = None
) -> Price:
    """The price of ``provider``/``model`` (see the module docstring for the order).

    ``provider_options``: those of the run (its ``base_url`` decides whether the server is
    a local one). Raises :class:`PriceUnknownError` when no price applies.
    """
    if provider in FREE_PROVIDERS:
        return Price(0.0, 0.0, origin="free", note=f"{provider} is free")
    own = _workspace_rows(ctx).get((provider, model))
    if own is not None:
        return own
    url = local_server(provider, provider_options)
    if url is not None:
        return Price(
            0.0,
            0.0,
            origin="local",
            source=url,
            note=(
                f"{provider}/{model} at {url} is priced at $0 as a local OpenAI-compatible server "
                f"(its base URL is not the provider's own); if it bills, set its price: "
                f"itagger vlm prices set {provider} {model} IN OUT"
            ),
        )
    shipped = _shipped(provider, model)
    if shipped is not None:
        return shipped
    raise PriceUnknownError(
        f"no price for {provider}/{model}, so its cost cannot be bounded; set it first, e.g. "
        f"ws.set_vlm_price({provider!r}, {model!r}, input_per_mtok=0.15, output_per_mtok=0.60) "
        f"or `itagger vlm prices set {provider} {model} IN OUT` (USD per million tokens; "
        "`itagger vlm prices` lists the shipped ones)"
    )


def stale_notes(prices: Iterable[tuple[str, Price]], today: date | None = None) -> list[str]:
    """A line for each ``(name, price)`` read more than :data:`STALE_DAYS` days ago."""
    notes = []
    for name, price in prices:
        age = price.age_days(today)
        if age is not None and age > STALE_DAYS:
            where = f" ({price.source})" if price.source else ""
            notes.append(
                f"the price of {name} was read on {price.read_on} ({age} days ago){where}: check it, "
                f"then `itagger vlm prices set` to confirm or correct it"
            )
    return notes


def price_rows(ctx: Context, today: date | None = None) -> list[dict[str, Any]]:
    """Every price that applies in this workspace: the shipped table with the workspace's
    rows over it, one dict per model (rates, origin, date read, age, source), sorted."""
    merged = {**shipped_prices(), **_workspace_rows(ctx)}
    rows = []
    for (provider, model), price in sorted(merged.items()):
        age = price.age_days(today)
        rows.append(
            {
                "provider": provider,
                "model": model,
                **{column.removesuffix("_per_mtok"): getattr(price, column) for column in RATE_COLUMNS},
                "origin": price.origin,
                "read_on": price.read_on,
                "stale": age is not None and age > STALE_DAYS,
                "source": price.source,
            }
        )
    return rows


def price_table(ctx: Context, today: date | None = None) -> pd.DataFrame:
    """:func:`price_rows` as a DataFrame (USD per million tokens)."""
    import pandas as pd

    return pd.DataFrame(price_rows(ctx, today))


def with_note(price: Price, note: str) -> Price:
    """``price`` with ``note`` added to its note."""
    return replace(price, note="; ".join(n for n in (price.note, note) if n))
