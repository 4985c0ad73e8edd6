"""Papermill batch runs and their records.

A batch run executes a parameterised notebook (``notebooks/batch/*.ipynb``) against the
workspace it is started from, and records it as a run of kind ``batch``: notebook,
parameters, package version, start, end, status, error and the executed notebook's path
(``ITAGGER_HOME/runs/<run id>/<name>.ipynb``). A notebook that fails is a failed run whose
``error`` names the cell's exception; the executed notebook with its traceback is kept.

The notebook finds the workspace through the environment of its kernel
(``ITAGGER_HOME``, ``ITAGGER_DATABASE_URL``, ``ITAGGER_STORE``), never through injected
parameters, so a database password never lands in the executed notebook. Parameters whose
name looks like a secret (``api_key``, ``token``, ...) are refused: papermill writes every
parameter into the notebook it saves.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itagger_lib.errors import BatchError
from itagger_lib.runs import finish_run, start_run, update_run

if TYPE_CHECKING:
    from itagger_lib.context import Context

KIND = "batch"
SECRET_NAME = re.compile(r"(api[_-]?key|secret|token|password|passwd|credential)", re.IGNORECASE)
SECRET_VALUE = re.compile(r"^(sk-|sk_|xox[abp]-|ghp_|AKIA)[A-Za-z0-9_\-]{8,}")


def batch_folders() -> list[Path]:
    """Where named batch notebooks are looked up: the packaged copy, then the repository's."""
    package = Path(__file__).resolve().parent
    return [package / "notebooks" / "batch", package.parent / "notebooks" / "batch"]


def resolve_notebook(notebook: str | os.PathLike[str]) -> Path:
    """The notebook file for a path (relative to the cwd) or a name such as ``demo``.

    Raises
    ------
    BatchError
        When no such notebook exists; the message lists the places searched and the names
        available.
    """
    raw = Path(notebook).expanduser()
    names = [raw] if raw.suffix == ".ipynb" else [raw.with_name(raw.name + ".ipynb"), raw]
    for candidate in names:
        if candidate.is_file():
            return candidate.resolve()
    if not raw.is_absolute() and len(raw.parts) == 1:
        for folder in batch_folders():
            for candidate in names:
                path = folder / candidate
                if path.is_file():
                    return path.resolve()
    known = sorted({p.stem for folder in batch_folders() if folder.is_dir() for p in folder.glob("*.ipynb")})
    raise BatchError(
        f"no notebook {str(notebook)!r}: not a file relative to {Path.cwd()} and not one of the "
        f"batch notebooks ({', '.join(known) or 'none found'}); give a path to an .ipynb file"
    )


def check_parameters(parameters: Mapping[str, Any], declared: Mapping[str, Any], notebook: Path) -> None:
    """Refuse unknown parameter names and anything that looks like a secret.

    Papermill writes injected parameters into the executed notebook, so keys must reach the
    kernel through its environment (``OPENAI_API_KEY``, ...) instead.
    """
    for name, value in parameters.items():
        if SECRET_NAME.search(name) or (isinstance(value, str) and SECRET_VALUE.match(value)):
            raise BatchError(
                f"parameter {name!r} looks like a secret; papermill would write it into the "
                "executed notebook. Set it in the environment (e.g. OPENAI_API_KEY) instead"
            )
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise BatchError(
            f"{notebook.name} has no parameter {', '.join(map(repr, unknown))}; its parameters "
            f"are: {', '.join(sorted(declared)) or 'none (add a cell tagged parameters)'}"
        )


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """The names and defaults of the notebook's ``parameters`` cell."""
    import papermill as pm

    return {name: spec.get("default") for name, spec in pm.inspect_notebook(str(notebook)).items()}


@contextlib.contextmanager
def workspace_environment(ctx: Context, run_id: int) -> Iterator[None]:
    """Point kernels started inside the block at ``ws`` (restored afterwards)."""
    values = {
        "ITAGGER_HOME": str(ctx.settings.home),
        "ITAGGER_DATABASE_URL": ctx.settings.database_url,
        "ITAGGER_STORE": str(ctx.store.root),
        "ITAGGER_BATCH_RUN": str(run_id),
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _ipc_kernel_manager() -> type:
    """A kernel manager that talks to its kernel over Unix sockets where the OS has them.

    The default is TCP on loopback, which any local user can reach (messages are signed,
    but not encrypted, and the kernel says so on every start); Unix sockets live beside the
    connection file in the user's private runtime folder. TCP on Windows.
    """
    from jupyter_client.manager import KernelManager
    from traitlets import default

    if os.name != "posix":
        return KernelManager

    class IPCKernelManager(KernelManager):
        @default("transport")
        def _ipc(self) -> str:
            return "ipc"

    return IPCKernelManager


def describe_failure(exc: BaseException) -> str:
    """One line naming the failed cell's exception (papermill's) or the runner's own error."""
    ename = getattr(exc, "ename", None)
    if ename:
        cell = getattr(exc, "exec_count", None)
        where = f" in cell [{cell}]" if cell is not None else ""
        return f"{ename}: {getattr(exc, 'evalue', '')}{where}".strip()
    return f"{type(exc).__name__}: {exc}"


def last_output(notebook: Path, lines: int = 10) -> str:
    """The last printed lines of an executed notebook (its closing message, e.g. where
    the results are); empty when it printed nothing or cannot be read."""
    import nbformat

    try:
        executed = nbformat.read(str(notebook), as_version=4)
    except (OSError, ValueError):
        return ""
    for cell in reversed(executed.cells):
        texts = [o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout"]
        if texts:
            return "\n".join("".join(texts).rstrip().splitlines()[-lines:])
    return ""


@dataclass
class BatchResult:
    """What a batch run did: its run id, status, error and the executed notebook."""

    run_id: int
    notebook: Path
    output: Path
    status: str
    parameters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    last_output: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def __str__(self) -> str:
        line = f"batch run {self.run_id} ({self.notebook.name}) {self.status} in {self.seconds:.1f} s"
        if self.error:
            line += f"\n  error: {self.error}"
        if self.last_output and self.ok:
            line += "\n" + "\n".join(f"  | {text}" for text in self.last_output.splitlines())
        return f"{line}\n  executed notebook: {self.output}"

    def _repr_html_(self) -> str:
        colour = "green" if self.ok else "crimson"
        error = f"<br>error: <code>{html.escape(self.error)}</code>" if self.error else ""
        return (
            f"<p>batch run {self.run_id} (<code>{html.escape(self.notebook.name)}</code>) "
            f"<b style='color:{colour}'>{self.status}</b> in {self.seconds:.1f} s{error}<br>"
            f"executed notebook: <code>{html.escape(str(self.output))}</code></p>"
        )


def run_batch(
    ctx: Context,
    notebook: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    kernel_name: str | None = None,
    progress: bool = False,
    log_output: bool = False,
    execution_timeout: int | None = None,
) -> BatchResult:
    """Execute ``notebook`` with papermill against ``ws`` and record it as a run.

    Parameters
    ----------
    notebook
        A path to an ``.ipynb`` file, or the name of a batch notebook (``demo``,
        ``science``, ``export``, ...).
    parameters
        Values for the names in the notebook's ``parameters`` cell. Unknown names, and
        names or values that look like secrets, raise :class:`~itagger_lib.errors.BatchError`
        before anything runs.
    output_dir
        Folder for the executed notebook; default ``ITAGGER_HOME/runs/<run id>``. The
        notebook runs with this folder as its working directory.

    Returns
    -------
    BatchResult
        ``status`` is ``succeeded`` or ``failed``; a failure's ``error`` names the cell's
        exception and is also recorded on the run. Nothing is raised for a failing notebook.
    """
    import papermill as pm

    from itagger_lib._version import __version__

    path = resolve_notebook(notebook)
    values = dict(parameters or {})
    check_parameters(values, declared_parameters(path), path)
    run_id = start_run(ctx.engine, KIND, {"notebook": str(path), "parameters": values}, ctx.user, n_total=1)
    folder = Path(output_dir) if output_dir is not None else ctx.settings.home / "runs" / str(run_id)
    output = (folder / path.name).resolve()
    update_run(ctx.engine, run_id, output_path=str(output))
    started = time.perf_counter()
    error: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with workspace_environment(ctx, run_id):
            pm.execute_notebook(
                str(path),
                str(output),
                parameters=values,
                kernel_name=kernel_name,
                cwd=str(folder),
                progress_bar=progress,
                log_output=log_output,
                execution_timeout=execution_timeout,
                report_mode=False,
                kernel_manager_class=_ipc_kernel_manager(),
            )
    except KeyboardInterrupt:
        finish_run(ctx.engine, run_id, status="interrupted", error="interrupted (Ctrl-C)")
        raise
    except Exception as exc:  # a failed notebook is a failed run, whatever the cause
        error = describe_failure(exc)
    seconds = time.perf_counter() - started
    details = {
        "seconds": round(seconds, 3),
        "papermill": pm.__version__,
        "package_version": __version__,
    }
    if error is None:
        status = finish_run(ctx.engine, run_id, status="succeeded", n_done=1, details=details)
    else:
        status = finish_run(ctx.engine, run_id, status="failed", error=error, n_failed=1, details=details)
    return BatchResult(run_id, path, output, status, values, error, seconds, last_output(output))
