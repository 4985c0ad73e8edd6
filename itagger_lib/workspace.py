"""The workspace: the one object a notebook holds.

It ties the settings, the image store and the database together, and is the front door to
every capability (ingest, science, VLM ratings, human tagging, review, export). Each method
is a thin call into the module that does the work, so that module can be used and tested on
its own.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from itagger_lib._version import __version__
from itagger_lib.config import Settings
from itagger_lib.db import make_engine, redact_url
from itagger_lib.db.migrate import current_revision, head_revision, upgrade
from itagger_lib.db.models import Image, Run, RunFailure, Setting, utcnow
from itagger_lib.errors import ImageNotFoundError, MigrationError
from itagger_lib.store import ImageStore

if TYPE_CHECKING:
    import pandas as pd

    from itagger_lib.check import StoreReport
    from itagger_lib.ingest import IngestReport


class Workspace:
    """A database plus an image store.

    Parameters
    ----------
    database_url
        ``sqlite:///path`` or ``postgresql+psycopg://user@host/db``; default
        ``ITAGGER_DATABASE_URL``, else SQLite in ``ITAGGER_HOME``.
    store
        Folder of the content-addressed image store; default ``ITAGGER_STORE``, else
        ``ITAGGER_HOME/store``.
    home
        Overrides ``ITAGGER_HOME``.
    auto_migrate
        Apply pending migrations on open (default, unless ``ITAGGER_AUTO_MIGRATE=0``);
        with ``False`` a database behind the package's schema raises
        :class:`~itagger_lib.errors.MigrationError`.

    Examples
    --------
    >>> import itagger_lib as it
    >>> ws = it.Workspace()                      # doctest: +SKIP
    >>> ws.ingest("photos/")                     # doctest: +SKIP
    """

    def __init__(
        self,
        database_url: str | None = None,
        store: str | os.PathLike[str] | None = None,
        *,
        home: str | os.PathLike[str] | None = None,
        auto_migrate: bool | None = None,
        max_megapixels: float | None = None,
        user: str | None = None,
    ) -> None:
        self.settings = Settings.from_env(
            home=None if home is None else Path(home),
            database_url=database_url,
            store=None if store is None else Path(store),
            max_megapixels=max_megapixels,
            auto_migrate=auto_migrate,
            user=user,
        )
        self.engine = make_engine(self.settings.database_url)
        self.store = ImageStore(self.settings.store)
        self._open_schema()

    def _open_schema(self) -> None:
        head = head_revision()
        current = current_revision(self.engine)
        if current == head:
            return
        if not self.settings.auto_migrate:
            raise MigrationError(
                f"database {redact_url(self.settings.database_url)} is at schema revision "
                f"{current or 'none (empty)'}, but Image Tagger {__version__} needs {head}; "
                "back it up, then run `itagger db upgrade`"
            )
        upgrade(self.engine)

    @property
    def user(self) -> str:
        """Who is working (``JUPYTERHUB_USER``, ``ITAGGER_USER`` or the OS user)."""
        return self.settings.user

    @property
    def home(self) -> Path:
        return self.settings.home

    def session(self) -> Session:
        """A new ORM session; use it as a context manager."""
        return Session(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Workspace(database_url={redact_url(self.settings.database_url)!r}, "
            f"store={str(self.store.root)!r})"
        )

    # -- images -----------------------------------------------------------------------------

    def ingest(
        self,
        paths: Any,
        recursive: bool = True,
        *,
        collection: str | None = None,
        progress: bool = True,
        workers: int | None = None,
    ) -> IngestReport:
        """Add image files and folders (JPEG, PNG, WebP, TIFF, BMP).

        Idempotent: files already present add nothing; identical bytes under another name
        become one image with both sources recorded. Each bad file becomes a recorded
        failure with its reason; the batch goes on. Returns an
        :class:`~itagger_lib.ingest.IngestReport`.
        """
        from itagger_lib.ingest import ingest

        return ingest(
            self,
            paths,
            recursive=recursive,
            collection=collection,
            progress=progress,
            workers=workers,
        )

    def check(self, rehash: bool = True) -> StoreReport:
        """Images whose file is missing or changed, and stored files with no row."""
        from itagger_lib.check import check_store

        return check_store(self, rehash=rehash)

    def images(self) -> pd.DataFrame:
        """All images, one row each (id, sha256, size, format, source, collection, ...)."""
        import pandas as pd

        with self.engine.connect() as connection:
            return pd.read_sql(sa.select(Image).order_by(Image.id), connection, index_col="id")

    def image(self, ref: int | str) -> dict[str, Any]:
        """One image's row, by id (also a numpy integer from a DataFrame index) or by SHA-256
        (a unique prefix of at least 8 characters)."""
        with self.engine.connect() as connection:
            if isinstance(ref, numbers.Integral) or (isinstance(ref, str) and ref.isdigit() and len(ref) < 8):
                rows = connection.execute(sa.select(Image).where(Image.id == int(ref))).mappings().all()
            else:
                ref = str(ref).lower()
                if len(ref) < 8:
                    raise ImageNotFoundError(
                        f"image {ref!r}: give an id or at least 8 hex digits of the SHA-256"
                    )
                rows = (
                    connection.execute(sa.select(Image).where(Image.sha256.startswith(ref)).limit(2))
                    .mappings()
                    .all()
                )
        if not rows:
            raise ImageNotFoundError(f"no image {ref!r} in this workspace; see ws.images()")
        if len(rows) > 1:
            raise ImageNotFoundError(f"image prefix {ref!r} is ambiguous; give more of the hash")
        return dict(rows[0])

    def image_path(self, ref: int | str) -> Path:
        """Where an image's file lives in the store."""
        row = self.image(ref)
        return self.store.path_for(row["sha256"], row["ext"])

    # -- runs and settings ------------------------------------------------------------------

    def runs(self, kind: str | None = None) -> pd.DataFrame:
        """Runs, newest first (kind, parameters, version, status, counts, error, output)."""
        import pandas as pd

        query = sa.select(Run).order_by(Run.id.desc())
        if kind:
            query = query.where(Run.kind == kind)
        with self.engine.connect() as connection:
            return pd.read_sql(query, connection, index_col="id")

    def failures(self, run_id: int | None = None) -> pd.DataFrame:
        """Recorded failures (input and reason) of one run, or of all runs."""
        import pandas as pd

        query = sa.select(RunFailure).order_by(RunFailure.id)
        if run_id is not None:
            query = query.where(RunFailure.run_id == run_id)
        with self.engine.connect() as connection:
            return pd.read_sql(query, connection, index_col="id")

    def get_setting(self, key: str, default: Any = None) -> Any:
        with self.engine.connect() as connection:
            value = connection.execute(sa.select(Setting.value).where(Setting.key == key)).scalar()
        return default if value is None else value

    def set_setting(self, key: str, value: Any) -> None:
        with self.engine.begin() as connection:
            updated = connection.execute(
                sa.update(Setting)
                .where(Setting.key == key)
                .values(value=value, updated_at=utcnow(), updated_by=self.user)
            )
            if updated.rowcount == 0:
                connection.execute(
                    sa.insert(Setting).values(key=key, value=value, updated_at=utcnow(), updated_by=self.user)
                )

    def status(self) -> dict[str, Any]:
        """Counts and versions for the admin cockpit."""
        with self.engine.connect() as connection:
            images = connection.execute(sa.select(sa.func.count()).select_from(Image)).scalar_one()
            runs = connection.execute(sa.select(sa.func.count()).select_from(Run)).scalar_one()
            failures = connection.execute(sa.select(sa.func.count()).select_from(RunFailure)).scalar_one()
        return {
            "package_version": __version__,
            "database": redact_url(self.settings.database_url),
            "schema_revision": current_revision(self.engine),
            "schema_head": head_revision(),
            "store": str(self.store.root),
            "images": images,
            "runs": runs,
            "failures": failures,
            "user": self.user,
        }

    # -- science ----------------------------------------------------------------------------

    def run_science(self, images: Any = None, params: Any = None, executor: Any = None, **kwargs: Any) -> Any:
        """Compute missing science metrics; see :func:`itagger_lib.science.runner.run_science`."""
        from itagger_lib.science.runner import run_science

        return run_science(self, images=images, params=params, executor=executor, **kwargs)

    def metrics(self, run: int | None = None, **kwargs: Any) -> pd.DataFrame:
        """Science metrics, image × metric; see :func:`itagger_lib.science.runner.metrics_frame`."""
        from itagger_lib.science.runner import metrics_frame

        return metrics_frame(self, run=run, **kwargs)

    # -- codebooks, tagging, ratings ----------------------------------------------------------

    def load_codebook(self, source: Any = None) -> Any:
        """Store a codebook (YAML file, text, or the default); see :mod:`itagger_lib.codebook`."""
        from itagger_lib.codebook import store_codebook

        return store_codebook(self, source)

    def codebook(self, name: str | None = None, version: str | None = None) -> Any:
        """A stored codebook (the newest by default)."""
        from itagger_lib.codebook import get_codebook

        return get_codebook(self, name=name, version=version)

    def create_study(self, name: str, **kwargs: Any) -> Any:
        """Create a rating study with its assignment design; see :mod:`itagger_lib.ratings`."""
        from itagger_lib.ratings import create_study

        return create_study(self, name, **kwargs)

    def add_ratings(self, ratings: Any, **kwargs: Any) -> Any:
        """Import ratings collected elsewhere (long DataFrame), validated against the codebook;
        see :func:`itagger_lib.rating_import.add_ratings`."""
        from itagger_lib.rating_import import add_ratings

        return add_ratings(self, ratings, **kwargs)

    # -- VLM --------------------------------------------------------------------------------

    def rate_with_vlm(self, **kwargs: Any) -> Any:
        """Rate images with a VLM under a hard budget; see :func:`itagger_lib.vlm.engine.rate_with_vlm`."""
        from itagger_lib.vlm.engine import rate_with_vlm

        return rate_with_vlm(self, **kwargs)

    def vlm_audit(self, **kwargs: Any) -> Any:
        """Self-consistency of a VLM: K repeats per image; see :func:`itagger_lib.vlm.audit.audit_vlm`."""
        from itagger_lib.vlm.audit import audit_vlm

        return audit_vlm(self, **kwargs)

    def set_vlm_price(self, provider: str, model: str, input_per_mtok: float, output_per_mtok: float) -> None:
        """Set a model's price in USD per million input and output tokens (needed before spending)."""
        from itagger_lib.vlm.ledger import set_price

        set_price(self, provider, model, input_per_mtok, output_per_mtok)

    def vlm_ledger(self, run_id: int | None = None) -> pd.DataFrame:
        """Every VLM call: tokens, cost, latency, status (the ledger)."""
        from itagger_lib.vlm.ledger import ledger

        return ledger(self, run_id=run_id)

    # -- review and export ------------------------------------------------------------------

    def ratings(self, **kwargs: Any) -> pd.DataFrame:
        """All ratings in long format with provenance; see :func:`itagger_lib.export.ratings_frame`."""
        from itagger_lib.export import ratings_frame

        return ratings_frame(self, **kwargs)

    def table(self, **kwargs: Any) -> pd.DataFrame:
        """One row per image: metrics, bins and mean ratings; see :func:`itagger_lib.export.table`."""
        from itagger_lib.export import table

        return table(self, **kwargs)

    def agreement(
        self, attributes: Any = None, raters: Any = None, by: Any = None, **kwargs: Any
    ) -> pd.DataFrame:
        """Inter-rater agreement per attribute; see :func:`itagger_lib.review.agreement.agreement`."""
        from itagger_lib.review.agreement import agreement

        return agreement(self, attributes=attributes, raters=raters, by=by, **kwargs)

    def export(self, out: str | os.PathLike[str], format: str = "parquet", **kwargs: Any) -> Any:
        """Write tidy exports (parquet, csv or bn) with their provenance; see :mod:`itagger_lib.export`."""
        from itagger_lib.export import export

        return export(self, out, format=format, **kwargs)
