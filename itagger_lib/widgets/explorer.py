"""``Explorer``: filter, sort and page the collection; select, compare, plot.

A thin widget over library functions: :mod:`itagger_lib.browse` (filter, sort and page in
the database), :mod:`itagger_lib.science.results` and :mod:`itagger_lib.ratings.frames`
(metric values; each image's ratings as the statistic of the attribute's level of
measurement: median, mean or modal category), :mod:`itagger_lib.image_sets` (named
selections) and :mod:`itagger_lib.thumbnails` (cached display-size JPEGs). Every action is
a method, so the logic is driven from plain pytest as well as from the buttons. Plots show
the images the active filters keep, and say how many.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from itagger_lib.browse import Query, matching_ids, page
from itagger_lib.codebook import stored_attributes
from itagger_lib.errors import ArgumentError
from itagger_lib.image_sets import save_set
from itagger_lib.images import collections
from itagger_lib.ratings.aggregate import statistic_of
from itagger_lib.ratings.frames import image_statistic, rated_attributes
from itagger_lib.science.names import canonical_keys
from itagger_lib.science.results import latest_science_run, metric_range, metric_values
from itagger_lib.thumbnails import display_jpeg

if TYPE_CHECKING:
    import pandas as pd

    from itagger_lib.workspace import Workspace

TILE = 180
#: a row of controls that wraps onto the next line instead of running off the cell's edge
ROW = {"flex_flow": "row wrap", "align_items": "center", "grid_gap": "4px 8px"}
NARROW = {"width": "auto", "min_width": "9em", "max_width": "16em"}


def _auto() -> dict[str, Any]:
    """A control as wide as its label and value need, not the default 300 px."""
    return {"style": {"description_width": "initial"}, "layout": W.Layout(width="auto")}


def _rounded_out(low: float, high: float) -> tuple[float, float]:
    """``(low, high)`` to four significant digits of their span, rounded outwards so that
    no observed value falls outside."""
    span = abs(high - low) or abs(high) or 1.0
    scale = 10.0 ** (3 - math.floor(math.log10(span)))
    return math.floor(low * scale) / scale, math.ceil(high * scale) / scale


def _row(children: list[W.Widget]) -> W.HBox:
    return W.HBox(children, layout=W.Layout(**ROW))


class Explorer(W.VBox):
    """Browse a workspace: metric-range, rating, bin and collection filters; sort by any
    metric or rating (median of an ordinal attribute, mean of an interval one); a paged
    thumbnail grid; named selections; side-by-side comparison; metric distributions and
    metric-vs-rating plots of the filtered images."""

    def __init__(self, ws: Workspace, page_size: int = 24) -> None:
        self.ws = ws
        self.query = Query(page_size=page_size)
        self.selected: set[int] = set()
        self.total = 0
        self.rows: pd.DataFrame | None = None
        self.plot_title = ""  # the last plot's title: its n and the filtered count
        run = latest_science_run(ws)
        self.metric_keys = sorted(canonical_keys((run or {}).get("details", {}).get("cut_points", {})))
        self.attributes = rated_attributes(ws)
        stored = stored_attributes(ws)
        # nominal and multi-label ratings have no order to sort by
        sortable = [a for a in self.attributes if statistic_of(stored.get(a)) in ("median", "mean")]
        self.collections = collections(ws.engine)
        self.message = W.HTML()
        short = {"description_width": "initial"}
        self.filter_metric = W.Dropdown(options=self.metric_keys, description="metric", **_auto())
        self.filter_low = W.FloatText(description="from", style=short, layout=W.Layout(**NARROW))
        self.filter_high = W.FloatText(description="to", style=short, layout=W.Layout(**NARROW))
        self.filter_metric.observe(lambda _: self._observed_range(), "value")
        self.filter_bin = W.Dropdown(options=["", "low", "mid", "high"], description="or bin", **_auto())
        add = W.Button(description="Add filter", icon="filter")
        add.on_click(lambda _: self._add_filter_from_controls())
        clear = W.Button(description="Clear filters")
        clear.on_click(lambda _: self.clear_filters())
        self.filters_html = W.HTML()
        sort_options = ["id"] + self.metric_keys + [f"rating:{a}" for a in sortable]
        self.sort = W.Dropdown(options=sort_options, value="id", description="sort by", **_auto())
        self.descending = W.Checkbox(
            description="descending", value=False, indent=False, layout=W.Layout(width="auto")
        )
        self.sort.observe(lambda _: self.set_sort(self.sort.value, self.descending.value), "value")
        self.descending.observe(lambda _: self.set_sort(self.sort.value, self.descending.value), "value")
        self.collection = W.Dropdown(
            options=["", *list(self.collections)],
            description="collection",
            style=short,
            layout=W.Layout(width="auto"),
        )
        self.collection.observe(lambda change: self.set_collection(change["new"] or None), "value")
        prev_button = W.Button(description="◀ previous")
        next_button = W.Button(description="next ▶")
        prev_button.on_click(lambda _: self.previous_page())
        next_button.on_click(lambda _: self.next_page())
        self.page_label = W.HTML()
        self.grid = W.GridBox(layout=W.Layout(grid_template_columns=f"repeat(auto-fill, {TILE + 10}px)"))
        self.set_name = W.Text(
            placeholder="name of the set", description="selection", style=short, layout=W.Layout(**NARROW)
        )
        save = W.Button(description="Save selection")
        save.on_click(lambda _: self._save_from_controls())
        compare = W.Button(description="Compare selected")
        compare.on_click(lambda _: self._show_comparison())
        self.plot_metric = W.Dropdown(options=self.metric_keys, description="metric", **_auto())
        plottable = [a for a in self.attributes if statistic_of(stored.get(a)) != "share"]
        self.plot_attribute = W.Dropdown(options=["", *plottable], description="vs rating", **_auto())
        plot = W.Button(description="Plot")
        plot.on_click(lambda _: self._show_plot())
        self.output = W.Output()
        super().__init__(
            [
                self.message,
                _row([self.filter_metric, self.filter_low, self.filter_high, self.filter_bin, add, clear]),
                self.filters_html,
                _row([self.sort, self.descending, self.collection]),
                _row([prev_button, self.page_label, next_button]),
                self.grid,
                _row([self.set_name, save, compare]),
                _row([self.plot_metric, self.plot_attribute, plot]),
                self.output,
            ]
        )
        if not self.metric_keys:
            self.message.value = (
                "<b>No science metrics yet.</b> Ingest images (01_Upload) and run "
                "<code>ws.run_science()</code>; until then images are listed by id."
            )
        self._observed_range()
        self.refresh()

    # -- actions (used by the buttons and by tests) -------------------------------------

    def add_filter(
        self, key: str, low: float | None = None, high: float | None = None, bin: str | None = None
    ) -> None:
        """Keep images whose ``key`` lies in ``[low, high]`` (or in the ``bin``)."""
        if bin:
            self.query.bins[key] = bin
        else:
            self.query.metric_ranges[key] = (low, high)
        self.query.page = 0
        self.refresh()

    def add_rating_filter(self, attribute: str, low: float | None = None, high: float | None = None) -> None:
        """Keep images whose median (ordinal) or mean (interval) rating lies in ``[low, high]``."""
        self.query.rating_ranges[attribute] = (low, high)
        self.query.page = 0
        self.refresh()

    def add_category_filter(self, attribute: str, category: int | str) -> None:
        """Keep images whose modal category of a nominal ``attribute`` is ``category``."""
        self.query.rating_modes[attribute] = category
        self.query.page = 0
        self.refresh()

    def clear_filters(self) -> None:
        self.query.metric_ranges.clear()
        self.query.rating_ranges.clear()
        self.query.rating_modes.clear()
        self.query.bins.clear()
        self.query.page = 0
        self.refresh()

    def set_sort(self, key: str, descending: bool = False) -> None:
        self.query.sort, self.query.descending, self.query.page = key, descending, 0
        self.refresh()

    def set_collection(self, collection: str | None) -> None:
        self.query.collection, self.query.page = collection, 0
        self.refresh()

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.query.page_size))

    def next_page(self) -> None:
        if self.query.page + 1 < self.pages:
            self.query.page += 1
            self.refresh()

    def previous_page(self) -> None:
        if self.query.page > 0:
            self.query.page -= 1
            self.refresh()

    def select(self, image_ids: list[int], selected: bool = True) -> None:
        for image_id in image_ids:
            (self.selected.add if selected else self.selected.discard)(int(image_id))

    def save_selection(self, name: str) -> int:
        """Store the selected images as a named set; returns its size."""
        return save_set(self.ws, name, self.selected)

    def comparison(self) -> pd.DataFrame:
        """The selected images' metrics side by side (2–4 images)."""
        if not 2 <= len(self.selected) <= 4:
            raise ArgumentError(f"select 2 to 4 images to compare (selected: {len(self.selected)})")
        return metric_values(self.ws, self.metric_keys, sorted(self.selected)).T

    def comparison_label(self, image_id: int) -> str:
        """``#12 facade_003.jpg``: an image as the comparison names it."""
        return f"#{int(image_id)} {self.ws.image(int(image_id))['source_name']}"

    def filtered_ids(self) -> list[int]:
        """Every image the active filters keep (all pages): what the plots show."""
        return matching_ids(self.ws, self.query)

    def histogram_data(self, metric: str) -> pd.Series:
        """``metric`` of the filtered images that have it."""
        ids = self.filtered_ids()
        values = metric_values(self.ws, [metric], ids)
        return values[metric].dropna() if metric in values else values.reindex(columns=[metric])[metric]

    def scatter_data(self, metric: str, attribute: str) -> tuple[pd.DataFrame, float, float]:
        """Per filtered image: ``metric`` and its ratings of ``attribute`` as the statistic of
        the attribute's level (median, mean, or modal category; the column is named
        ``<attribute>.<statistic>``), with Pearson's r (interval only) and Spearman's ρ
        (ordinal and interval); both ``NaN`` for a nominal attribute or under 3 images."""
        import pandas as pd

        ids = self.filtered_ids()
        values = metric_values(self.ws, [metric], ids)
        statistic = image_statistic(self.ws, attribute)
        column = f"{attribute}.{statistic.name}"
        if values.empty or statistic.empty:
            return pd.DataFrame(columns=[metric, column]), float("nan"), float("nan")
        joined = values[[metric]].join(statistic.rename(column), how="inner").dropna()
        if len(joined) < 3 or statistic.name == "mode":
            return joined, float("nan"), float("nan")
        spearman = float(joined[metric].corr(joined[column], method="spearman"))
        pearson = float(joined[metric].corr(joined[column])) if statistic.name == "mean" else float("nan")
        return joined, pearson, spearman

    def _observed_range(self) -> None:
        """Start the range fields at the chosen metric's lowest and highest value."""
        observed = metric_range(self.ws, self.filter_metric.value) if self.filter_metric.value else None
        if observed is not None:
            self.filter_low.value, self.filter_high.value = _rounded_out(*observed)

    # -- rendering ----------------------------------------------------------------------

    def refresh(self) -> None:
        # Counting passes over every match: do it only when the filters change, not per page.
        filters = repr(
            (
                self.query.metric_ranges,
                self.query.rating_ranges,
                self.query.rating_modes,
                self.query.bins,
                self.query.collection,
                self.query.image_set,
            )
        )
        recount = filters != getattr(self, "_counted_filters", None)
        self.rows, total = page(self.ws, self.query, count=recount)
        if recount:
            self.total, self._counted_filters = int(total or 0), filters
        self.page_label.value = (
            f"&nbsp;page {self.query.page + 1} of {self.pages} — {self.total} images&nbsp;"
        )
        parts = [f"{html.escape(k)} ∈ [{lo}, {hi}]" for k, (lo, hi) in self.query.metric_ranges.items()]
        parts += [f"{html.escape(k)} = {b}" for k, b in self.query.bins.items()]
        parts += [
            f"rating {html.escape(a)} ∈ [{lo}, {hi}]" for a, (lo, hi) in self.query.rating_ranges.items()
        ]
        parts += [
            f"mode of {html.escape(a)} = {html.escape(str(c))}" for a, c in self.query.rating_modes.items()
        ]
        self.filters_html.value = "filters: " + ("; ".join(parts) if parts else "none")
        self.grid.children = [self._tile(row) for row in self.rows.to_dict("records")]

    def _tile(self, row: dict[str, Any]) -> W.Widget:
        try:
            picture: W.Widget = W.Image(
                value=display_jpeg(self.ws, row, TILE),
                format="jpeg",
                layout=W.Layout(max_width=f"{TILE}px", max_height=f"{TILE}px"),
            )
        except Exception as exc:  # a file missing from the store must not break the page
            picture = W.HTML(f"<i>cannot show: {html.escape(str(exc))}</i>")
        label = f"#{row['id']}"
        if row.get("sort_value") is not None and row.get("sort_value") == row.get("sort_value"):
            label += f" · {row['sort_value']:.3g}"
        box = W.Checkbox(value=row["id"] in self.selected, description=label, indent=False)
        box.observe(lambda change, i=row["id"]: self.select([i], change["new"]), "value")
        name = html.escape(str(row.get("source_name") or ""))
        file_name = W.HTML(
            f"<div title='{name}' style='overflow:hidden;text-overflow:ellipsis;white-space:nowrap;"
            f"font-size:.85em;color:#555'>{name}</div>",
            layout=W.Layout(width=f"{TILE}px"),
        )
        file_name.add_class("itagger-file-name")
        return W.VBox([picture, box, file_name], layout=W.Layout(width=f"{TILE + 6}px"))

    def _add_filter_from_controls(self) -> None:
        key = self.filter_metric.value
        if not key:
            return
        if self.filter_bin.value:
            self.add_filter(key, bin=self.filter_bin.value)
        else:
            self.add_filter(key, self.filter_low.value, self.filter_high.value)

    def _save_from_controls(self) -> None:
        try:
            size = self.save_selection(self.set_name.value)
            self.message.value = f"saved set <b>{html.escape(self.set_name.value)}</b> ({size} images)"
        except Exception as exc:
            self.message.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"

    def _show_comparison(self) -> None:
        from IPython.display import display

        self.output.clear_output()
        with self.output:
            try:
                table = self.comparison()
            except Exception as exc:
                print(exc)
                return
            labels = {i: self.comparison_label(i) for i in table.columns}
            tiles = [
                W.VBox(
                    [
                        W.Image(value=display_jpeg(self.ws, int(i), 320), format="jpeg"),
                        W.HTML(html.escape(labels[i])),
                    ]
                )
                for i in table.columns
            ]
            display(_row(tiles))
            display(table.rename(columns=labels))

    def _show_plot(self) -> None:
        import matplotlib.pyplot as plt

        self.output.clear_output()
        with self.output:
            metric, attribute = self.plot_metric.value, self.plot_attribute.value
            if not metric:
                print("no metrics yet: run ws.run_science()")
                return
            if not attribute:
                values = self.histogram_data(metric)
                _fig, ax = plt.subplots(figsize=(5, 3))
                ax.hist(values, bins=30)
                ax.set_xlabel(metric)
                ax.set_ylabel("images")
                self.plot_title = f"n = {len(values)} of {self.total} filtered images"
            else:
                data, pearson, spearman = self.scatter_data(metric, attribute)
                column = str(data.columns[1])
                _fig, ax = plt.subplots(figsize=(5, 3.5))
                self.plot_title = f"n = {len(data)} of {self.total} filtered images"
                if column.endswith(".mode"):  # categories: one box per modal category
                    groups = [(str(c), g[metric]) for c, g in data.groupby(column, sort=True)]
                    ax.boxplot([g for _, g in groups], tick_labels=[c for c, _ in groups], vert=False)
                    ax.set_xlabel(metric)
                    ax.set_ylabel(f"modal {attribute}")
                else:
                    ax.scatter(data[metric], data[column], s=12)
                    ax.set_xlabel(metric)
                    ax.set_ylabel(column)
                    r = "" if pearson != pearson else f"r = {pearson:.2f}, "
                    self.plot_title = f"{r}ρ = {spearman:.2f}, {self.plot_title}"
            ax.set_title(self.plot_title)
            plt.show()
