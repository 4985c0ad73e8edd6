"""The workspace: the one object a notebook holds, and the facade over every room.

It ties the settings, the image store and the database together and is the front door to
every capability (ingest, science, VLM ratings, human tagging, review, export). It has no
logic of its own: each method is one call into the module that does the work, with that
function's real parameters and a docstring, so Shift-Tab in JupyterLab shows what to pass.
Those modules take a :class:`~itagger_lib.context.Context` (which a workspace is) and never
the workspace itself, so they can be used and tested on their own.

Modules are imported by the method that needs them, so ``import itagger_lib`` stays light
in batch jobs and kernels that only ingest.

This module is long because it is the notebook's documentation: each method carries the
full signature and numpydoc docstring of the function it calls (about 20 lines each for
some 30 methods), and the one line of code that calls it. There is no logic to split out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from itagger_lib.config import Settings
from itagger_lib.db import make_engine, redact_url
from itagger_lib.db.migrate import open_schema
from itagger_lib.store import ImageStore

if TYPE_CHECKING:
    from datetime import date

    import pandas as pd
    import pyarrow as pa

    from itagger_lib._types import ImageRef, ImageSelection, JSONValue, StrPath
    from itagger_lib.check import StoreReport
    from itagger_lib.codebook import Codebook, CodebookRef, CodebookSource
    from itagger_lib.comparisons.vlm import VLMJudgeReport
    from itagger_lib.ingest import IngestReport
    from itagger_lib.ratings.imports import ImportReport
    from itagger_lib.ratings.studies import StudyInfo, StudyRef
    from itagger_lib.science.parallel import ExecutorLike
    from itagger_lib.science.pipeline import ScienceReport
    from itagger_lib.vlm.plan import SampleSpec
    from itagger_lib.vlm.report import VLMReport

__all__ = ["Workspace"]


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
    max_megapixels
        The decompression-bomb limit of ingest (default ``ITAGGER_MAX_MEGAPIXELS``, 200).
    user
        Who is recorded as working (default ``JUPYTERHUB_USER``, ``ITAGGER_USER``, the OS user).

    Attributes
    ----------
    settings : Settings
        Where the data lives and the limits.
    engine : sqlalchemy.engine.Engine
        The database.
    store : ImageStore
        The image store.

    Examples
    --------
    >>> import itagger_lib as it
    >>> ws = it.Workspace()                      # doctest: +SKIP
    >>> ws.ingest("photos/")                     # doctest: +SKIP
    """

    def __init__(
        self,
        database_url: str | None = None,
        store: StrPath | None = None,
        *,
        home: StrPath | None = None,
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
        open_schema(self.engine, auto_migrate=self.settings.auto_migrate)

    @property
    def user(self) -> str:
        """Who is working (``JUPYTERHUB_USER``, ``ITAGGER_USER`` or the OS user)."""
        return self.settings.user

    @property
    def home(self) -> Path:
        """The workspace's home folder (``ITAGGER_HOME``): batch runs and caches live here."""
        return self.settings.home

    def session(self) -> Session:
        """A new ORM session on the workspace database; use it as a context manager."""
        return Session(self.engine)

    def close(self) -> None:
        """Close the database connections (the workspace can be opened again)."""
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
        paths: Iterable[StrPath] | StrPath,
        recursive: bool = True,
        *,
        collection: str | None = None,
        progress: bool = True,
        workers: int | None = None,
    ) -> IngestReport:
        """Add image files and folders (JPEG, PNG, WebP, TIFF, BMP).

        Idempotent: files already present add nothing; identical bytes under another name
        become one image with both sources recorded. Each bad file becomes a recorded
        failure with its reason; the batch goes on.

        Parameters
        ----------
        paths
            Files, folders and glob patterns.
        recursive
            Descend into sub-folders.
        collection
            A collection name for the new images.
        progress
            Show a progress bar.
        workers
            Threads that probe, hash and copy files (default 2 × cores, at most 8).

        Returns
        -------
        IngestReport
            Added, already present, failed (with reasons) and ignored files, and the run id.
        """
        from itagger_lib.ingest import ingest

        return ingest(
            self, paths, recursive=recursive, collection=collection, progress=progress, workers=workers
        )

    def check(self, rehash: bool = True) -> StoreReport:
        """Images whose file is missing or changed, and stored files with no row.

        Parameters
        ----------
        rehash
            Read and hash every file again (slow on a large store, but the only way to
            notice bytes that changed on disk).
        """
        from itagger_lib.check import check_store

        return check_store(self, rehash=rehash)

    def images(self) -> pd.DataFrame:
        """All images, one row each, indexed by id (sha256, size, format, source, collection, ...)."""
        from itagger_lib.images import table

        return table(self.engine)

    def image(self, ref: ImageRef) -> dict[str, Any]:
        """One image's row.

        Parameters
        ----------
        ref
            The image id (also a NumPy integer from a DataFrame index) or at least 8 hex
            digits of its SHA-256.

        Raises
        ------
        ImageNotFoundError
            No such image, or an ambiguous or too short prefix.
        """
        from itagger_lib.images import row

        return row(self.engine, ref)

    def image_path(self, ref: ImageRef) -> Path:
        """Where an image's file lives in the store (``ref`` as for :meth:`image`)."""
        from itagger_lib.images import file_path

        return file_path(self.engine, self.store, ref)

    # -- runs and settings ------------------------------------------------------------------

    def near_duplicates(self, threshold: int = 6, images: ImageSelection = None) -> pd.DataFrame:
        """Near-duplicate groups by perceptual hash: per image ``source_name``, ``group``,
        ``group_size`` and ``phash``, largest groups first.

        Parameters
        ----------
        threshold
            Bits (of 64, at most 11) within which two pHashes are near-duplicates; the
            default 6 catches re-encodes, resizes and colour edits (``docs/designs.md``).
        images
            The images to group; default all. Hashes not stored yet are computed first.
        """
        from itagger_lib.comparisons.phashes import near_duplicates

        return near_duplicates(self, threshold, images)

    def split(
        self,
        test_size: float = 0.2,
        seed: int = 0,
        by: str = "near_duplicate",
        threshold: int = 6,
        images: ImageSelection = None,
    ) -> pd.DataFrame:
        """A train/test split per image (``split``: ``train`` or ``test``) that keeps every
        near-duplicate group on one side.

        Parameters
        ----------
        test_size
            The test share, in (0, 1).
        seed
            Makes the split reproducible.
        by
            ``"near_duplicate"`` (groups kept together) or ``"image"`` (images independently).
        threshold
            The near-duplicate threshold in bits (see :meth:`near_duplicates`).
        images
            The images to split; default all.
        """
        from itagger_lib.comparisons.phashes import split

        return split(self, test_size, seed, by, threshold, images)

    def runs(self, kind: str | None = None) -> pd.DataFrame:
        """Runs, newest first (kind, parameters, version, status, counts, error, output).

        Parameters
        ----------
        kind
            Only runs of this kind (``ingest``, ``science``, ``vlm``, ``import``, ``batch``).
        """
        from itagger_lib.runs import runs_frame

        return runs_frame(self.engine, kind)

    def failures(self, run_id: int | None = None) -> pd.DataFrame:
        """Recorded failures (input, image and reason) of run ``run_id``, or of all runs."""
        from itagger_lib.runs import failures_frame

        return failures_frame(self.engine, run_id)

    def get_setting(self, key: str, default: JSONValue = None) -> JSONValue:
        """A setting stored in the workspace database (``vlm.provider``, ``vlm.budget_usd``, ...),
        or ``default`` when it has none."""
        from itagger_lib.stored_settings import get_setting

        return get_setting(self.engine, key, default)

    def set_setting(self, key: str, value: JSONValue) -> None:
        """Store a setting (anything JSON can hold) for everyone using this workspace."""
        from itagger_lib.stored_settings import set_setting

        set_setting(self.engine, key, value, self.user)

    def status(self) -> dict[str, Any]:
        """Counts and versions for the admin cockpit: package version, database, schema
        revision and head, store, images, runs, failures, user."""
        from itagger_lib.overview import status

        return status(self)

    # -- science ----------------------------------------------------------------------------

    def run_science(
        self,
        images: ImageSelection = None,
        params: Mapping[str, Any] | None = None,
        executor: ExecutorLike | None = None,
        *,
        scheduler: str | None = None,
        progress: bool = True,
        max_in_flight: int | None = None,
        cluster_timeout: float | None = None,
    ) -> ScienceReport:
        """Compute the science metrics that are missing for ``params``.

        Parameters
        ----------
        images
            Image ids or SHA-256 prefixes, or a DataFrame indexed by image id; default all.
        params
            Overrides of :data:`~itagger_lib.science.DEFAULT_PARAMS` (``docs/metrics.md``).
            Unchanged images with unchanged parameters compute nothing; changed parameters
            give a new result set beside the old one.
        executor
            A :class:`concurrent.futures.Executor` or a ``dask.distributed.Client``;
            default a process pool with one worker per core.
        scheduler
            Address of a Dask scheduler (``tcp://host:8786``) to run on instead.
        progress
            Show a progress bar.
        max_in_flight
            Most images submitted and not yet written (default 4 × workers).
        cluster_timeout
            On Dask: seconds to wait for a scheduler that does not answer (at most 30) and
            for a worker when none is left; then the run stops as ``interrupted`` (default
            ``ITAGGER_CLUSTER_TIMEOUT``, 60 s; ``docs/scale.md``).

        Returns
        -------
        ScienceReport
            Computed, up to date and failed images, and the run id.
        """
        from itagger_lib.science.pipeline import run_science

        return run_science(
            self,
            images,
            params,
            executor,
            scheduler=scheduler,
            progress=progress,
            max_in_flight=max_in_flight,
            cluster_timeout=cluster_timeout,
        )

    def metrics(
        self,
        run: int | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        composites: bool = True,
        bins: bool = False,
    ) -> pd.DataFrame:
        """Science metrics, one row per image, one column per metric.

        Parameters
        ----------
        run
            A science run whose parameter set to show (default the newest run's).
        params
            Or a parameter set.
        composites
            Add the composite indices, standardised as stored with the run.
        bins
            Add a ``bin.<metric>`` column (low/mid/high) per metric, cut where the run's
            stored tertiles are.
        """
        from itagger_lib.science.results import metrics_frame

        return metrics_frame(self, run, params=params, composites=composites, bins=bins)

    # -- codebooks, studies, ratings --------------------------------------------------------

    def load_codebook(self, source: CodebookSource = None) -> Codebook:
        """Store a codebook version and return it with its id.

        Parameters
        ----------
        source
            A YAML file, YAML text, a mapping, a :class:`~itagger_lib.codebook.Codebook`, or
            ``None`` for the shipped architecture codebook. Identical content returns the
            stored version; a changed content under a stored name and version raises
            :class:`~itagger_lib.errors.CodebookError` (bump ``version``).
        """
        from itagger_lib.codebook import store_codebook

        return store_codebook(self, source)

    def codebook(self, name: str | None = None, version: str | None = None) -> Codebook:
        """A stored codebook: the newest, the newest called ``name``, or ``name`` at ``version``."""
        from itagger_lib.codebook import get_codebook

        return get_codebook(self, name=name, version=version)

    def create_study(
        self,
        name: str,
        codebook: CodebookRef = None,
        raters_per_image: int = 3,
        seed: int | None = None,
        retest_share: float = 0.0,
        gold: Mapping[ImageRef, Mapping[str, Any]] | None = None,
        mode: str = "blind",
        images: ImageSelection = None,
        gold_every: int = 10,
        *,
        design: str = "likert",
        question: str | None = None,
        pairs_per_image: float = 10.0,
        trials_per_image: float = 6.0,
        block_size: int = 4,
        avoid_near_duplicates: bool | str = True,
        threshold: int = 6,
        ties: bool = False,
        adaptive: bool = False,
    ) -> StudyInfo:
        """Create a rating study: Likert (one image, the codebook's scales), pairwise or
        best–worst (``docs/designs.md``).

        Parameters
        ----------
        name
            A unique study name.
        codebook
            The study's codebook (an id, a stored :class:`~itagger_lib.codebook.Codebook`,
            or YAML to store); default the newest stored one, else the shipped default.
        raters_per_image
            Likert: how many different raters rate each image (k ≥ 1). Pairwise and
            best–worst: the raters the schedule is planned for (each image reaches
            ``pairs_per_image`` / ``trials_per_image`` over that many raters; later raters
            get schedules too).
        seed
            Seed of the per-rater orders and schedules; drawn and recorded if omitted.
        retest_share
            Likert only: share in [0, 1) of a rater's done images shown again (test–retest).
        gold
            Likert only: ``{image: {attribute: value}}``, images with known answers shown
            to every rater once every ``gold_every`` items.
        mode
            ``"blind"`` (no machine answer shown) or ``"assisted"`` (the VLM's answer shown).
        images
            The study's images; default all.
        gold_every
            Likert only: items between gold items.
        design
            ``"likert"``, ``"pairwise"`` (two images, choose one) or ``"best_worst"``
            (``block_size`` images, choose the best and the worst).
        question
            Pairwise and best–worst: the codebook attribute asked about (its key).
        pairs_per_image
            Pairwise: pairs each image appears in, over ``raters_per_image`` raters.
        trials_per_image
            Best–worst: trials each image appears in, over ``raters_per_image`` raters.
        block_size
            Best–worst: images per trial (4 or 5 usual; 3–8).
        avoid_near_duplicates
            ``True``: never two near-duplicates in one trial; ``"rater"``: each rater sees
            one member of each near-duplicate group; ``False``: no control.
        threshold
            The near-duplicate threshold in bits (see :meth:`near_duplicates`).
        ties
            Pairwise: allow "no difference" as an answer (a tie counts half a win each).
        adaptive
            Pairwise: each rater's first half of pairs from the balanced schedule, the rest in
            batches chosen by expected information gain under the current scores.
        """
        from itagger_lib.comparisons.studies import create_study

        return create_study(
            self,
            name,
            codebook,
            raters_per_image,
            seed,
            retest_share,
            gold,
            mode,
            images,
            gold_every,
            design=design,
            question=question,
            pairs_per_image=pairs_per_image,
            trials_per_image=trials_per_image,
            block_size=block_size,
            avoid_near_duplicates=avoid_near_duplicates,
            threshold=threshold,
            ties=ties,
            adaptive=adaptive,
        )

    def study_scores(
        self,
        study: StudyRef = None,
        source: str = "human",
        level: float = 0.95,
        n_splits: int = 20,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Scores per image of a pairwise or best–worst study, with intervals; reliability
        and provenance in ``attrs``.

        Pairwise: Bradley–Terry ``score`` (logits, centred), ``se``, ``low``/``high``,
        ``shown``, ``wins``, ``losses``, ``ties``. Best–worst: multinomial-logit ``score``
        with ``se`` and interval, ``best``, ``worst``, ``shown`` and the counting score
        ``count_score`` = (best − worst) / shown. ``attrs["reliability"]``: ``split_half``
        (Spearman–Brown corrected) and, pairwise, ``circular_triad_share`` within raters;
        ``attrs["provenance"]``: the run, its parameters' hash and the package version.

        Parameters
        ----------
        study
            The study (id, name, or ``None`` for the newest).
        source
            ``"human"``, ``"vlm"`` or ``"all"``: whose judgements are scored.
        level
            Level of the intervals.
        n_splits
            Random splits averaged for split-half reliability.
        seed
            Seed of the splits.
        """
        from itagger_lib.comparisons.scores import study_scores

        return study_scores(self, study, source, level, n_splits, seed)

    def judge_with_vlm(
        self,
        study: StudyRef = None,
        provider: str | None = None,
        model: str | None = None,
        budget_usd: float | None = None,
        limit: int | None = None,
        long_side: int = 512,
        max_retries: int = 2,
        provider_options: dict[str, Any] | None = None,
        images: str = "separate",
    ) -> VLMJudgeReport:
        """Let a VLM judge a pairwise or best–worst study as one more rater
        (``vlm:<provider>/<model>@cmp-2``), cached and budgeted like VLM ratings.

        Each trial is one request with the trial's images as separate images of one message
        ("Image 1:", "Image 2:", ...); the answer is stored as the VLM's choice (``ws.choices(source="vlm")``,
        ``ws.study_scores(source="vlm")``). A rerun judges only the trials still open.

        Parameters
        ----------
        study
            The study (id, name, or ``None`` for the newest).
        provider, model
            The VLM (default the workspace's ``vlm.provider`` / ``vlm.model`` settings).
        budget_usd
            The run's budget; the workspace budget ``vlm.budget_usd`` applies as well.
        limit
            At most this many trials in this run.
        long_side
            Pixels of the long side of each image sent.
        max_retries
            Retries of a request after a retryable error (429, 5xx, timeouts).
        provider_options
            Passed to the provider (e.g. ``base_url`` of an OpenAI-compatible server).
        images
            ``"separate"`` (default) or ``"composite"``: the images side by side in one numbered
            image, for a server that takes one image per message (rater ``…@cmp-1``; the two
            are different raters).
        """
        from itagger_lib.comparisons.vlm import judge_with_vlm

        return judge_with_vlm(
            self, study, provider, model, budget_usd, limit, long_side, max_retries, provider_options, images
        )

    def choices(self, study: StudyRef | None = None, source: str | None = None) -> pd.DataFrame:
        """The judgements of pairwise and best–worst studies in long format: one row per
        judged trial (``trial_id``, ``rater``, ``items`` shown left to right, ``best``,
        ``worst``, ``tie``, timing and source).

        Parameters
        ----------
        study
            One study (id or name), or ``None`` for every comparative study.
        source
            ``"human"``, ``"vlm"``, or ``None`` for both.
        """
        from itagger_lib.comparisons.frames import choices_frame

        return choices_frame(self, study, source)

    def add_ratings(
        self,
        ratings: pd.DataFrame,
        codebook: CodebookRef = None,
        source: str = "import",
        mode: str = "blind",
        *,
        errors: str = "raise",
        if_imported: str = "fail",
        name: str | None = None,
    ) -> ImportReport:
        """Import ratings collected elsewhere (paper forms, survey tools) as one run.

        Parameters
        ----------
        ratings
            A long table: ``image`` (id, 8+ hex digits of its SHA-256, or the file name it
            was ingested from) or ``image_id``, ``rater``, ``attribute``, ``value``;
            optional ``rated_at`` (naive times are UTC) and ``note``.
        codebook
            The codebook the values are checked against (default the newest stored one).
        source
            ``import`` (default), ``human``, ``vlm`` or ``adjudication``.
        mode
            ``blind`` or ``assisted``.
        errors
            ``"raise"``: store nothing if a row is invalid; ``"skip"``: store the valid rows
            and record the others as the run's failures.
        if_imported
            Rows an earlier import stored: ``"fail"``, ``"skip"`` them, or ``"append"``.
        name
            A name kept with the run (the file's name, say).

        Returns
        -------
        ImportReport
            Rows stored, blanks and invalid rows skipped, the run id; ``int()`` of it is the
            number of rows stored.
        """
        from itagger_lib.ratings.imports import add_ratings

        return add_ratings(
            self, ratings, codebook, source, mode, errors=errors, if_imported=if_imported, name=name
        )

    def ratings(
        self,
        attributes: Sequence[str] | None = None,
        raters: Sequence[str] | None = None,
        sources: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Every rating in long format (image × rater × attribute × value) with provenance.

        Parameters
        ----------
        attributes, raters, sources
            Keep only these (default all); sources are ``human``, ``vlm``, ``import`` and
            ``adjudication``. A name the workspace does not have raises
            :class:`~itagger_lib.errors.UnknownNameError` listing the known ones.
        """
        from itagger_lib.ratings.frames import ratings_frame

        return ratings_frame(self, attributes, raters, sources)

    # -- VLM --------------------------------------------------------------------------------

    def rate_with_vlm(
        self,
        images: ImageSelection = None,
        attributes: Iterable[str] | None = None,
        provider: str | None = None,
        model: str | None = None,
        sample: SampleSpec = None,
        repeats: int = 1,
        temperature: float = 0.0,
        seed: int | None = None,
        max_tokens: int | None = None,
        concurrency: int = 8,
        budget_usd: float | None = None,
        dry_run: bool = False,
        force: bool = False,
        rationale: bool = False,
        progress: bool = True,
        *,
        codebook: CodebookRef = None,
        sample_seed: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        retry_base_s: float = 0.5,
        long_side: int = 1024,
        provider_options: Mapping[str, Any] | None = None,
        mode: str = "interactive",
        wait_s: float = 0.0,
    ) -> VLMReport:
        """Rate images with a VLM under a hard budget (cached, resumable).

        Parameters
        ----------
        images
            Image ids or SHA-256 prefixes, a DataFrame indexed by id, or ``None`` for all.
        attributes
            Codebook keys to ask for (default all attributes of the codebook).
        provider, model
            ``openai``, ``anthropic``, ``stub`` or a registered provider, and its model;
            default the settings ``vlm.provider``/``vlm.model``, then
            ``ITAGGER_VLM_PROVIDER``/``ITAGGER_VLM_MODEL``, then the API key present.
        sample
            ``None`` (all), ``N`` (random, seed recorded), ``"unrated"``, or
            ``{"n": N, "by": {image_id: stratum}, "seed": S, "unrated": True}``.
        repeats
            Calls per image (repeat index 0..repeats-1, part of the cache key).
        temperature, seed, max_tokens
            Sampling of the model; ``max_tokens`` bounds each answer.
        concurrency
            Requests in flight at once.
        budget_usd
            Hard budget of this run; the workspace budget is the setting ``vlm.budget_usd``.
        dry_run
            Count requests and estimate the cost; send nothing.
        force
            Ask again even when the cache has an answer (the new ratings replace the old).
        rationale
            Ask for, and store, a short rationale with each answer.
        progress
            Show a progress bar.
        codebook
            The codebook whose attributes are asked (default the newest stored one).
        sample_seed
            Seed of the random sample.
        timeout, max_retries, retry_base_s
            Seconds per request, and retries with exponential backoff.
        long_side
            Long side in pixels of the JPEG sent.
        provider_options
            For the provider: ``base_url``, ``api_key``, ``http``, ``token_limit``, ...
        mode
            ``"interactive"``, or ``"batch"``: the provider's batch API at half the price,
            answers within 24 hours; a rerun (or :meth:`vlm_batches`) collects them and never
            sends again what is in flight.
        wait_s
            Batch mode: seconds to wait for the batches to end and collect them (0: return).

        Returns
        -------
        VLMReport
            Calls planned, cache hits, requests, failures, spend and the run id (batch mode:
            requests submitted, waiting and collected, and the batch ids).
        """
        from itagger_lib.vlm.rating import rate_with_vlm

        return rate_with_vlm(
            self,
            images,
            attributes,
            provider,
            model,
            sample,
            repeats,
            temperature,
            seed,
            max_tokens,
            concurrency,
            budget_usd,
            dry_run,
            force,
            rationale,
            progress,
            codebook=codebook,
            sample_seed=sample_seed,
            timeout=timeout,
            max_retries=max_retries,
            retry_base_s=retry_base_s,
            long_side=long_side,
            provider_options=provider_options,
            mode=mode,
            wait_s=wait_s,
        )

    def vlm_audit(
        self,
        images: ImageSelection = None,
        k: int = 5,
        temperature: float = 0.7,
        *,
        collapse_threshold: float = 0.9,
        attributes: Iterable[str] | None = None,
        provider: str | None = None,
        model: str | None = None,
        sample: SampleSpec = None,
        sample_seed: int | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
        concurrency: int = 8,
        budget_usd: float | None = None,
        force: bool = False,
        rationale: bool = False,
        codebook: CodebookRef = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        retry_base_s: float = 0.5,
        long_side: int = 1024,
        provider_options: Mapping[str, Any] | None = None,
        progress: bool = True,
    ) -> tuple[pd.DataFrame, VLMReport]:
        """Self-consistency of a VLM: ask the same images ``k`` times at ``temperature`` > 0.

        Parameters
        ----------
        images, k, temperature
            What to ask, how many answers per image, and how the model samples.
        collapse_threshold
            Flag an attribute as collapsed when one answer makes up at least this share.

        The other parameters are those of :meth:`rate_with_vlm`.

        Returns
        -------
        (DataFrame, VLMReport)
            Per attribute: spread, modal share, overall modal share, collapsed; and the run.
        """
        from itagger_lib.vlm.audit import audit_vlm

        return audit_vlm(
            self,
            images,
            k,
            temperature,
            collapse_threshold=collapse_threshold,
            attributes=attributes,
            provider=provider,
            model=model,
            sample=sample,
            sample_seed=sample_seed,
            seed=seed,
            max_tokens=max_tokens,
            concurrency=concurrency,
            budget_usd=budget_usd,
            force=force,
            rationale=rationale,
            codebook=codebook,
            timeout=timeout,
            max_retries=max_retries,
            retry_base_s=retry_base_s,
            long_side=long_side,
            provider_options=provider_options,
            progress=progress,
        )

    def vlm_runs(self) -> pd.DataFrame:
        """Every VLM run, newest first: rater (``vlm:<provider>/<model>@<prompt version>``),
        purpose (``rating`` or ``audit``), status, sampling, and ``primary``: whether the
        per-image values of its rater come from it (``is_primary``: chosen as such)."""
        from itagger_lib.vlm.primary import vlm_runs

        return vlm_runs(self)

    def set_primary_vlm_run(self, run: int) -> str:
        """Declare VLM run ``run`` the primary run of its model × prompt version: per-image
        values (``ws.table()``, exports, agreement) take its answers. Without a choice the
        newest finished run that is not an audit is primary. Returns the rater.

        Raises
        ------
        UnknownNameError
            ``run`` is not a VLM run of this workspace (the message lists them).
        """
        from itagger_lib.vlm.primary import set_primary_run

        return set_primary_run(self, run)

    def set_vlm_price(
        self,
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
        """Set a model's price in USD per million tokens; it overrides the shipped table
        (``0, 0`` for a free server).

        ``cached_input_per_mtok``/``cache_write_per_mtok``: prompt-cache reads and writes
        (default the input price); ``batch_*``: the provider's batch API (default the
        standard prices); ``source``: the page the price was read from.
        """
        from itagger_lib.vlm.prices import set_price

        set_price(
            self,
            provider,
            model,
            input_per_mtok,
            output_per_mtok,
            cached_input_per_mtok=cached_input_per_mtok,
            cache_write_per_mtok=cache_write_per_mtok,
            batch_input_per_mtok=batch_input_per_mtok,
            batch_output_per_mtok=batch_output_per_mtok,
            source=source,
        )

    def vlm_prices(self, today: date | None = None) -> pd.DataFrame:
        """The prices in effect (USD per million tokens): the shipped table with this
        workspace's own over it; the date each was read, whether it is older than 90 days,
        and its source page. ``today``: the date ages are counted to (default today)."""
        from itagger_lib.vlm.prices import price_table

        return price_table(self, today)

    def vlm_batches(self, poll: bool = True) -> pd.DataFrame:
        """Provider batches of batch-mode runs, newest first: status, counts, reserved and
        spent USD, times. With ``poll`` the open ones are asked about first and the ended
        ones collected (ratings and ledger rows at batch prices; invalid answers repaired)."""
        from itagger_lib.vlm.batches import vlm_batches

        return vlm_batches(self, poll)

    def cancel_vlm_batches(self, batch_ids: Iterable[int] | None = None) -> pd.DataFrame:
        """Cancel open provider batches (``batch_ids``, default all); returns the batches.

        What already ran is still collected (and billed); the rest costs nothing and is
        asked again by the next run.
        """
        from itagger_lib.vlm.batches import cancel_batches

        return cancel_batches(self, batch_ids)

    def vlm_ledger(self, run_id: int | None = None) -> pd.DataFrame:
        """Every VLM call (of run ``run_id``, or all): tokens, cost, latency, status; newest first."""
        from itagger_lib.vlm.ledger import ledger

        return ledger(self, run_id=run_id)

    # -- review and export ------------------------------------------------------------------

    def agreement(
        self,
        attributes: Sequence[str] | None = None,
        raters: Sequence[str] | None = None,
        by: pd.Series | str | None = None,
        n_boot: int = 1000,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Inter-rater agreement per attribute: Krippendorff's α with a bootstrap interval,
        Fleiss' κ, Gwet's AC1, mean pairwise Cohen's κ, ICC, percent agreement.

        Parameters
        ----------
        attributes
            Attribute keys (default every attribute with a level of measurement).
        raters
            Raters to compare (default every human and imported rater; VLMs are compared
            with ``itagger_lib.review.reading.vlm_agreement``). A VLM is named
            ``vlm:<provider>/<model>@<prompt version>`` and answers with its primary run; an
            unknown name raises :class:`~itagger_lib.errors.UnknownNameError`.
        by
            Groups: ``"collection"``, a science bin (``"bin.<metric>"``), or a Series
            indexed by image id; one row per attribute × group.
        n_boot
            Bootstrap replicates of α's interval (0: none).
        seed
            Seed of the bootstrap.
        """
        from itagger_lib.review.reading import agreement

        return agreement(self, attributes, raters, by, n_boot, seed)

    def table(
        self,
        run: int | None = None,
        bins: bool = True,
        ratings: pa.Table | pd.DataFrame | None = None,
        *,
        vlm_rater: str | None = None,
        ordinal_mean: bool = False,
    ) -> pd.DataFrame:
        """One row per image: image facts, science metrics (with bins) and ratings summarised
        by level of measurement, each column named for its statistic.

        ``rating.<attribute>.<statistic>``: nominal → ``mode``, ``tied_modes``, ``mode_share``,
        ``share.<category>``; multi-label → ``share.<label>``; ordinal → ``median``; interval →
        ``mean``, ``sd``; all → ``n``. ``rating.<attribute>.adjudicated``: the consensus.
        ``vlm.<attribute>.answer``: one VLM's answer from its primary run (``ws.vlm_runs()``).
        ``attrs["columns"]`` describes each rating column, ``attrs["vlm"]`` names the VLM run.

        Parameters
        ----------
        run
            The science run whose metrics to use (default the newest).
        bins
            Add the low/mid/high bins.
        ratings
            Ratings already read (long format), so they are not read again.
        vlm_rater
            The VLM rater of the ``vlm.*`` columns (default the one whose primary run is newest).
        ordinal_mean
            Also give ordinal attributes' ``mean_as_interval`` (the mean of scale points).
        """
        from itagger_lib.export.table import table

        return table(self, run, bins, ratings, vlm_rater=vlm_rater, ordinal_mean=ordinal_mean)

    def export(self, out: StrPath, format: str = "parquet", run: int | None = None) -> list[Path]:
        """Write tidy files with their provenance into folder ``out``; returns the files.

        Parameters
        ----------
        out
            The folder (created if missing).
        format
            ``parquet`` or ``csv`` (long ratings and the per-image table) or ``bn`` (the
            table discretised for a Bayesian network), or a registered format.
        run
            The science run whose metrics go in (default the newest).
        """
        from itagger_lib.export.write import export

        return export(self, out, format, run)
