"""Every error a user of Image Tagger can cause, in one tree.

::

    ItaggerError
    ├── ConfigError                 a setting or environment variable is unusable
    │   └── ArgumentError           an argument or command-line option has an unusable value
    │       └── UnknownNameError    a filter names a rater, attribute, run or metric that is not there
    ├── MigrationError              the database schema is not at the expected revision
    ├── PermissionDeniedError       the database role may not do this (a tagger writing a table)
    ├── DatabaseFullError           the database's disk is full or read-only (nothing of
    │                               the failed step was written)
    ├── StoreError                  the image store cannot be written or read
    │   └── StoreReadOnlyError      a write to a store marked ITAGGER_STORE_READONLY
    ├── ImageError                  one input file cannot be used (has ``.path``)
    │   ├── UnreadableFileError     permissions, broken symlink, loop, a directory
    │   ├── UnsupportedFormatError  not one of the supported image formats
    │   ├── CorruptImageError       truncated, zero bytes, not an image at all
    │   └── ImageTooLargeError      above the decompression-bomb megapixel limit
    ├── ImageNotFoundError          no image with that id or hash in the workspace
    ├── ScienceError                a metric cannot be computed
    │   └── ClusterError            a Dask scheduler out of reach, a worker's packages differ
    │       │                       from the client's, or a worker cannot read the image store
    │       └── ClusterLostError    no scheduler or no worker for longer than cluster_timeout
    ├── CodebookError               an invalid codebook (has ``.line``)
    ├── RatingError                 a value not valid for its attribute
    ├── AssignmentError             the tagging queue cannot give out an image
    ├── VLMError                    the VLM engine
    │   ├── ProviderError           unknown provider, missing key or base URL
    │   │   └── ProviderSetupError  the first request cannot reach the server, or it refuses
    │   │                           the key, model or URL (stops the run at once)
    │   ├── RetryableError          a request worth sending again (429, 5xx, timeout)
    │   ├── PriceUnknownError       no price set for a model before spending
    │   ├── BudgetExceededError     a request would overrun a budget
    │   ├── KillSwitchError         the workspace kill switch is on
    │   ├── VLMResponseError        a response that fails validation
    │   └── VLMBatchError           a provider batch cannot be submitted, found or cancelled
    ├── BatchError                  a papermill batch run failed
    └── OperationsError             backup, restore or doctor

``ArgumentError`` is also a :class:`ValueError`, as Python's own bad arguments are; it sits
under ``ConfigError`` because bad arguments were reported as configuration errors before it
existed, and code that catches ``ConfigError`` for them keeps working. Files with no row and
rows with no file are reported by ``itagger check`` (:class:`~itagger_lib.check.StoreReport`),
not raised.

Messages tell what to do in the words of the surface the user is on: the same remedy is a
CLI command or option in the shell and a Python call in a notebook. :func:`remedy` picks one
(``remedy("ws.failures(7)", "itagger failures 7")``); the ``itagger`` command calls
:func:`speak_shell` once at start.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "ArgumentError",
    "AssignmentError",
    "BatchError",
    "BudgetExceededError",
    "ClusterError",
    "ClusterLostError",
    "CodebookError",
    "ConfigError",
    "CorruptImageError",
    "DatabaseFullError",
    "ImageError",
    "ImageNotFoundError",
    "ImageTooLargeError",
    "ItaggerError",
    "KillSwitchError",
    "MigrationError",
    "OperationsError",
    "PermissionDeniedError",
    "PriceUnknownError",
    "ProviderError",
    "ProviderSetupError",
    "RatingError",
    "RetryableError",
    "ScienceError",
    "StoreError",
    "StoreReadOnlyError",
    "UnknownNameError",
    "UnreadableFileError",
    "UnsupportedFormatError",
    "VLMBatchError",
    "VLMError",
    "VLMResponseError",
]

_shell = False


def speak_shell(on: bool = True) -> bool:
    """Word remedies as CLI commands and options (``on``) or Python calls from now on;
    returns the previous setting."""
    global _shell
    previous, _shell = _shell, on
    return previous


def remedy(python: str, cli: str) -> str:
    """``cli`` when the user is in the shell (see :func:`speak_shell`), else ``python``."""
    return cli if _shell else python


class ItaggerError(Exception):
    """Base class of every error Image Tagger raises on purpose."""


class ConfigError(ItaggerError):
    """A setting or environment variable has a value that cannot be used."""


class ArgumentError(ConfigError, ValueError):
    """An argument (or command-line option) has a value that cannot be used; the message
    names the argument and the values it takes."""


class UnknownNameError(ArgumentError):
    """A filter names a rater, attribute, run or metric the workspace does not have.

    ``kind`` is what was looked up (``rater``, ``attribute``, ``VLM run``, ``metric``),
    ``unknown`` the names not found and ``known`` the names there are; the message lists
    them, so a typo is seen at once instead of silently filtering everything out.
    """

    def __init__(
        self, kind: str, unknown: Iterable[object], known: Iterable[object], *, hint: str = ""
    ) -> None:
        self.kind = kind
        self.unknown = [str(name) for name in unknown]
        self.known = sorted({str(name) for name in known})
        shown = ", ".join(self.known[:_SHOWN])
        if len(self.known) > _SHOWN:
            shown += f", … ({len(self.known)} in all)"
        names = ", ".join(repr(name) for name in self.unknown)
        plural = "s" if len(self.unknown) > 1 else ""
        message = f"unknown {kind}{plural} {names}; " + (
            f"known {kind}s: {shown}" if self.known else f"this workspace has no {kind}s yet"
        )
        super().__init__(message + (f" ({hint})" if hint else ""))


_SHOWN = 40  # names listed in the message; more are counted


class MigrationError(ItaggerError):
    """The database schema is not at the revision this version expects."""


class PermissionDeniedError(ItaggerError):
    """The database refused the action for this login role (hub group roles,
    ``itagger secure-db``).

    ``action`` is what was refused (``"insert into table runs"``), ``role`` the login role
    and ``needed`` the group that may do it (``researcher`` or ``admin``; ``None`` when no
    group may, e.g. acting as another rater).
    """

    def __init__(self, action: str, role: str | None, needed: str | None, detail: str = "") -> None:
        self.action, self.role, self.needed = action, role, needed
        who = f"database role {role!r}" if role else "this database role"
        message = f"permission denied: {who} may not {action}"
        if detail:
            message += f" ({detail})"
        if needed:
            message += f"; this needs the {needed} role: ask an admin, or sign in as a {needed}"
        super().__init__(message)


class DatabaseFullError(ItaggerError):
    """The database cannot take a write: its disk is full or mounted read-only. The failed
    transaction was rolled back; free space (or remount) and run the step again."""


class StoreError(ItaggerError):
    """The content-addressed image store cannot be written or read."""


class StoreReadOnlyError(StoreError):
    """A write to an image store that the settings mark read-only (``ITAGGER_STORE_READONLY``)."""


class ImageError(ItaggerError):
    """One input file cannot be used as an image.

    ``path`` names the file; the message says what is wrong and what to do.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Rebuild from (path, reason) so the error survives pickling out of worker processes.
        return (type(self), (self.path, self.reason))


class UnreadableFileError(ImageError):
    """The file cannot be opened: permissions, a broken symlink, a loop, a folder."""


class UnsupportedFormatError(ImageError):
    """The file is an image format Image Tagger does not ingest."""


class CorruptImageError(ImageError):
    """The file is empty, truncated or not an image despite its suffix."""


class ImageTooLargeError(ImageError):
    """The image has more pixels than the configured decompression-bomb limit."""


class ImageNotFoundError(ItaggerError, KeyError):
    """No image with that id or SHA-256 is in the workspace."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ScienceError(ItaggerError):
    """A metric cannot be computed for an image or with these parameters."""


class ClusterError(ScienceError):
    """A Dask cluster cannot run a science run: its scheduler cannot be reached, a worker's
    packages differ from the client's, or a worker cannot read the image store."""


class ClusterLostError(ClusterError):
    """A science run on Dask had no scheduler or no worker for longer than its
    ``cluster_timeout``; the run is recorded as ``interrupted`` and a rerun resumes."""


class CodebookError(ItaggerError):
    """A codebook is invalid; ``line`` is the 1-based line at fault, if known."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None) -> None:
        self.source = source
        self.line = line
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        elif line is not None:
            where = f"line {line}: "
        super().__init__(f"{where}{message}")


class RatingError(ItaggerError):
    """A rating value is not valid for its attribute."""


class AssignmentError(ItaggerError):
    """The tagging queue cannot give out an image (no study, no images left)."""


class VLMError(ItaggerError):
    """Base class of the VLM engine's errors."""


class ProviderError(VLMError):
    """Unknown provider, or a provider without the key or base URL it needs."""


class ProviderSetupError(ProviderError):
    """The provider cannot be used as configured: the first request could not connect
    (refused, unknown host) or was refused (401, 403, 404). Retrying cannot help, so the
    run stops at once with this one message, which says what to check.

    ``connect`` marks a connection that could not be made; later in a run, when requests
    have been answered, such a failure is retried like a dropped connection.
    """

    def __init__(self, message: str, *, connect: bool = False) -> None:
        super().__init__(message)
        self.connect = connect


class RetryableError(VLMError):
    """A request worth sending again: 429, 5xx, a timeout or a dropped connection.

    ``retry_after`` is the wait the provider asked for, in seconds (``None``: back off);
    ``timeout`` marks a request that timed out and so may have been billed.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, timeout: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.timeout = timeout


class PriceUnknownError(VLMError):
    """A model has no price in the price table, so its cost cannot be bounded."""


class BudgetExceededError(VLMError):
    """Sending a request would take spending past a run or workspace budget."""


class KillSwitchError(VLMError):
    """The workspace kill switch is on: no new VLM calls are made."""


class VLMResponseError(VLMError):
    """A VLM response is malformed or fails validation against the codebook."""


class VLMBatchError(VLMError):
    """A provider batch cannot be submitted, found, collected or cancelled (the message says
    which batch and why)."""


class BatchError(ItaggerError):
    """A papermill batch run failed; the run record holds the error."""


class OperationsError(ItaggerError):
    """Backup, restore or doctor could not complete."""
