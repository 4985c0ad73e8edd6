"""Planning a VLM run: which images (with sampling) and under which codebook."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib.codebook import Codebook, get_codebook, store_codebook
from itagger_lib.db.models import Image, Rating
from itagger_lib.errors import CodebookError, ConfigError, ImageNotFoundError
from itagger_lib.vlm import sampling

if TYPE_CHECKING:
    from itagger_lib.workspace import Workspace


def image_rows(ws: Workspace, images: Any) -> list[dict[str, Any]]:
    columns = [Image.id, Image.sha256, Image.ext, Image.width, Image.height]
    with ws.engine.connect() as connection:
        if images is None:
            return [dict(r) for r in connection.execute(sa.select(*columns).order_by(Image.id)).mappings()]
    if hasattr(images, "index") and not isinstance(images, list | tuple):
        images = list(images.index)  # a DataFrame/Series indexed by image id
    ids: list[int] = []
    for ref in images if isinstance(images, Iterable) and not isinstance(images, str) else [images]:
        ids.append(int(ref) if isinstance(ref, int) else int(ws.image(ref)["id"]))
    with ws.engine.connect() as connection:
        rows = {
            r["id"]: dict(r)
            for r in connection.execute(sa.select(*columns).where(Image.id.in_(ids))).mappings()
        }
    missing = [i for i in ids if i not in rows]
    if missing:
        raise ImageNotFoundError(f"no images with ids {missing[:10]} in this workspace; see ws.images()")
    return [rows[i] for i in dict.fromkeys(ids)]


def _unrated(
    ws: Workspace, image_ids: list[int], rater: str, keys: tuple[str, ...], codebook_id: int
) -> list[int]:
    with ws.engine.connect() as connection:
        rows = connection.execute(
            sa.select(Rating.image_id, sa.func.count(sa.distinct(Rating.attribute)))
            .where(Rating.rater == rater, Rating.attribute.in_(keys), Rating.codebook_id == codebook_id)
            .group_by(Rating.image_id)
        ).all()
    complete = {image_id for image_id, n in rows if n >= len(keys)}
    return [i for i in image_ids if i not in complete]


def choose_images(
    ws: Workspace,
    rows: list[dict[str, Any]],
    sample: Any,
    sample_seed: int | None,
    *,
    rater: str,
    keys: tuple[str, ...],
    codebook_id: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """Apply ``sample``: ``None``/"all", an int N, "unrated", or a mapping with ``n``, ``by``
    (image id → stratum), ``seed`` and ``unrated``."""
    spec: dict[str, Any]
    if sample is None or sample == "all":
        spec = {}
    elif sample == "unrated":
        spec = {"unrated": True}
    elif isinstance(sample, int) and not isinstance(sample, bool):
        spec = {"n": sample}
    elif isinstance(sample, Mapping):
        spec = dict(sample)
        unknown = set(spec) - {"n", "by", "seed", "unrated"}
        if unknown:
            raise ConfigError(f"sample: unknown keys {sorted(unknown)}; use n, by, seed, unrated")
    else:
        raise ConfigError(
            f"sample={sample!r}: use None, 'all', 'unrated', an integer N, or "
            "{'n': N, 'by': {image_id: stratum}, 'seed': S, 'unrated': True}"
        )
    ids = [r["id"] for r in rows]
    if spec.get("unrated"):
        ids = _unrated(ws, ids, rater, keys, codebook_id)
    seed = None
    if spec.get("n") is not None:
        seed = spec.get("seed", sample_seed)
        seed = sampling.new_seed() if seed is None else int(seed)
        if spec.get("by") is not None:
            by = spec["by"]
            strata = dict(by.items()) if hasattr(by, "items") else dict(by)
            ids = sampling.stratified_sample(ids, strata, int(spec["n"]), seed)
        else:
            ids = sampling.random_sample(ids, int(spec["n"]), seed)
    chosen = set(ids)
    return [r for r in rows if r["id"] in chosen], seed


def resolve_codebook(ws: Workspace, codebook: Any) -> Codebook:
    if isinstance(codebook, Codebook) and codebook.id is not None:
        return codebook
    if codebook is not None:
        return store_codebook(ws, codebook)
    try:
        return get_codebook(ws)
    except CodebookError:
        return store_codebook(ws)
