"""The context a domain function works in: a database engine, an image store, a user, settings.

Domain modules (ingest, science, VLM, ratings, review, export, ops) take a :class:`Context`
or plain arguments, never the :class:`~itagger_lib.workspace.Workspace` itself: the facade
sits above them and satisfies this protocol, as httpx's transports know a ``Request`` and
never the ``Client``. Anything with these four attributes will do, so a script or a test can
pass its own object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from itagger_lib.config import Settings
    from itagger_lib.store import ImageStore

__all__ = ["Context"]


class Context(Protocol):
    """What domain code needs of a workspace.

    Attributes
    ----------
    engine : sqlalchemy.engine.Engine
        The workspace database.
    store : ImageStore
        The content-addressed image store.
    user : str
        Who is working: recorded as the creator of runs, studies and settings, and the rater
        of the ratings they give.
    settings : Settings
        Where the data lives (``home``, ``database_url``, ``store``) and the limits.
    """

    @property
    def engine(self) -> Engine: ...

    @property
    def store(self) -> ImageStore: ...

    @property
    def user(self) -> str: ...

    @property
    def settings(self) -> Settings: ...
