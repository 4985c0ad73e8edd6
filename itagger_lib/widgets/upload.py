"""The upload panel: browser uploads or a server folder → ``ws.ingest``, with its failures.

Uploaded bytes are written under their own names to a temporary folder, ingested from
there (so the original file name is what the database keeps), and the folder is removed.
"""

from __future__ import annotations

import html
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

if TYPE_CHECKING:
    from itagger_lib.ingest import IngestReport
    from itagger_lib.workspace import Workspace


def safe_name(name: str, index: int) -> str:
    """The upload's base name, without any folder part a browser may send."""
    base = Path(name.replace("\\", "/")).name.strip() or f"upload-{index}"
    return base if base not in {".", ".."} else f"upload-{index}"


def write_uploads(uploads: Iterable[Mapping[str, Any]], folder: Path) -> list[Path]:
    """Write a ``FileUpload.value`` (dicts with ``name`` and ``content``) into ``folder``."""
    paths = []
    for index, item in enumerate(uploads):
        path = folder / f"{index:04d}" / safe_name(str(item["name"]), index)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(item["content"]))
        paths.append(path)
    return paths


def report_html(report: IngestReport) -> str:
    """The ingest summary and, when something failed, a table of inputs and reasons."""
    text = html.escape(report.summary())
    if not report.failed:
        return f"<p><b>{text}</b></p>"
    rows = "".join(
        f"<tr><td><code>{html.escape(Path(item).name)}</code></td><td>{html.escape(reason)}</td></tr>"
        for item, reason in report.failed[:200]
    )
    return (
        f"<p><b>{text}</b></p><table class='itagger-failures'><thead><tr><th>file</th>"
        f"<th>reason</th></tr></thead><tbody>{rows}</tbody></table>"
    )


class UploadPanel:
    """Upload images from the browser, or ingest a folder on the server.

    Parameters
    ----------
    ws
        The workspace to ingest into.
    collection
        Optional collection label for everything ingested through this panel.

    Examples
    --------
    >>> panel = it.UploadPanel(ws)      # doctest: +SKIP
    >>> panel                           # doctest: +SKIP
    """

    def __init__(self, ws: Workspace, collection: str | None = None) -> None:
        self.ws = ws
        self.last_report: IngestReport | None = None
        self.upload = widgets.FileUpload(
            accept="image/*,.tif,.tiff,.bmp,.webp",
            multiple=True,
            description="Choose images",
            layout=widgets.Layout(width="auto"),
        )
        self.collection = widgets.Text(
            value=collection or "", description="Collection", placeholder="optional label"
        )
        self.ingest_button = widgets.Button(
            description="Ingest uploads",
            button_style="primary",
            icon="upload",
            layout=widgets.Layout(width="auto"),
        )
        self.folder = widgets.Text(
            description="Server folder",
            placeholder="/data/photos",
            style={"description_width": "initial"},
        )
        self.folder_button = widgets.Button(
            description="Ingest folder", icon="folder-open", layout=widgets.Layout(width="auto")
        )
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="Progress")
        self.result = widgets.HTML(value=self._hint())
        self.ingest_button.on_click(lambda _: self.ingest_uploaded())
        self.folder_button.on_click(lambda _: self.ingest_folder(self.folder.value))
        self.widget = widgets.VBox(
            [
                widgets.HTML("<h3>Add images</h3>"),
                widgets.HBox([self.upload, self.ingest_button]),
                widgets.HBox([self.folder, self.folder_button]),
                self.collection,
                self.progress,
                self.result,
            ]
        )

    def _hint(self) -> str:
        n = self.ws.status()["images"]
        if n == 0:
            return (
                "<p>The workspace has no images yet: choose image files and press "
                "<b>Ingest uploads</b>, or type a folder on the server and press "
                "<b>Ingest folder</b>.</p>"
            )
        return f"<p>The workspace holds {n} images.</p>"

    def _run(self, paths: list[Path] | list[str], what: str) -> IngestReport:
        self.progress.max = max(len(paths), 1)
        self.progress.value = 0
        self.progress.bar_style = "info"
        self.result.value = f"<p>Ingesting {html.escape(what)} …</p>"
        try:
            report = self.ws.ingest(paths, collection=self.collection.value or None, progress=False)
        except Exception as exc:
            self.progress.bar_style = "danger"
            self.result.value = f"<p style='color:crimson'>Ingest failed: {html.escape(str(exc))}</p>"
            raise
        self.last_report = report
        self.progress.value = self.progress.max
        self.progress.bar_style = "warning" if report.failed else "success"
        self.result.value = report_html(report)
        return report

    def ingest_uploaded(self) -> IngestReport | None:
        """Ingest what was chosen in the upload widget; ``None`` when nothing was chosen."""
        uploads = list(self.upload.value)
        if not uploads:
            self.result.value = "<p>Choose one or more image files first.</p>"
            return None
        with tempfile.TemporaryDirectory(prefix="itagger-upload-") as tmp:
            paths = write_uploads(uploads, Path(tmp))
            report = self._run(paths, f"{len(paths)} uploaded files")
        self.upload.value = ()
        return report

    def ingest_folder(self, folder: str) -> IngestReport | None:
        """Ingest a folder (or file) on the server; ``None`` when no path was given."""
        folder = folder.strip()
        if not folder:
            self.result.value = "<p>Type the path of a folder on the server first.</p>"
            return None
        return self._run([folder], folder)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
