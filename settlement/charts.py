"""Server-rendered SVG charts for settlement statements: points issued and redeemed per day.

The SVG is built with the standard library's ElementTree, not a charting library. pygal's output
is styled by ID-scoped CSS, which fpdf2's SVG renderer ignores, so its chart comes out as a black
box. pygal also adds an import hook that raises ImportWarning on Python 3.11, and it puts a random
id in its output. leather's shapes cannot draw grouped columns, and it takes its fonts from
module-level theme globals. This chart uses presentation attributes only (no CSS, no script, no
external reference). That way the same string embeds inline in an HTML page and draws as vector
graphics in the PDF statement. The output is deterministic for the same input.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

SVG_NAMESPACE = "http://www.w3.org/2000/svg"
# The PDF statement registers DejaVu Sans under this family name. Browsers pick the first family
# that they have.
FONT_FAMILY = "DejaVu Sans, Helvetica, Arial, sans-serif"
MAX_DAYS = 31  # one calendar month; a longer series is a caller's mistake, not a chart to draw

WIDTH = 720
HEIGHT = 300
PLOT_LEFT = 56
PLOT_RIGHT = WIDTH - 16
PLOT_TOP = 64
PLOT_BOTTOM = HEIGHT - 36
Y_TICKS = 4

TEXT_COLOR = "#1a202c"
MUTED_COLOR = "#4a5568"
GRID_COLOR = "#e2e8f0"
AXIS_COLOR = "#718096"
ISSUED_COLOR = "#2b6cb0"
REDEEMED_COLOR = "#dd6b20"


@dataclass(frozen=True)
class Series:
    """One series of bars: its key (a class name and data attribute), legend label and color."""

    key: str
    label: str
    color: str


ISSUED = Series("issued", "Points issued", ISSUED_COLOR)
REDEEMED = Series("redeemed", "Points redeemed", REDEEMED_COLOR)


@dataclass(frozen=True)
class Scale:
    """A linear y scale from `low` to `high` points onto the plot's pixel rows, in `step`s."""

    low: int
    high: int
    step: int

    def y(self, points: int) -> float:
        fraction = (points - self.low) / (self.high - self.low)
        return PLOT_BOTTOM - fraction * (PLOT_BOTTOM - PLOT_TOP)

    def ticks(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))


def daily_points_svg(days: Sequence[tuple[date, int, int]], *, title: str) -> str:
    """A grouped bar chart of points issued vs redeemed for each `(day, issued, redeemed)`.

    Returns a standalone SVG document without an XML declaration, so it can also be inlined in
    HTML. An empty or all-zero month still draws its axes and legend."""
    if len(days) > MAX_DAYS:
        raise ValueError(f"a month has at most {MAX_DAYS} days, got {len(days)}")
    scale = _scale([value for _, issued, redeemed in days for value in (issued, redeemed)])
    root = _root(title)
    root.append(_background())
    root.append(_title(title))
    root.append(_legend((ISSUED, REDEEMED)))
    root.append(_y_axis(scale))
    root.append(_bars(days, scale))
    root.append(_x_axis(days, scale))
    if not any(issued or redeemed for _, issued, redeemed in days):
        root.append(_no_data_note())
    return ET.tostring(root, encoding="unicode")


def _scale(values: Sequence[int]) -> Scale:
    """A scale that includes zero and every value, with about `Y_TICKS` round steps."""
    low, high = min([0, *values]), max([0, *values])
    step = _nice_step(max(high - low, 1) / Y_TICKS)
    low_tick = math.floor(low / step) * step
    high_tick = max(math.ceil(high / step) * step, low_tick + step)
    return Scale(low_tick, high_tick, step)


def _nice_step(raw_step: float) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above `raw_step`, and at least 1 (points
    are whole)."""
    if raw_step <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(raw_step))
    for multiple in (1, 2, 5, 10):
        if multiple * magnitude >= raw_step:
            return int(multiple * magnitude)
    raise AssertionError("unreachable: ten magnitudes are always at or above raw_step")


def _root(title: str) -> ET.Element:
    return ET.Element(
        "svg",
        {
            "xmlns": SVG_NAMESPACE,
            "version": "1.1",
            "width": str(WIDTH),
            "height": str(HEIGHT),
            "viewBox": f"0 0 {WIDTH} {HEIGHT}",
            "role": "img",
            "aria-label": title,
            "font-family": FONT_FAMILY,
        },
    )


def _background() -> ET.Element:
    return _element("rect", x=0, y=0, width=WIDTH, height=HEIGHT, fill="#ffffff")


def _title(title: str) -> ET.Element:
    label = _text(title, x=PLOT_LEFT, y=24, size=15, color=TEXT_COLOR)
    label.set("class", "title")
    label.set("font-weight", "bold")
    return label


def _legend(series: Sequence[Series]) -> ET.Element:
    group = _element("g", **{"class": "legend"})
    x = PLOT_LEFT
    for entry in series:
        group.append(_element("rect", x=x, y=36, width=12, height=12, fill=entry.color))
        group.append(_text(entry.label, x=x + 18, y=46, size=12, color=MUTED_COLOR))
        x += 18 + 8 * len(entry.label) + 24  # an estimated text width; no font metrics here
    return group


def _y_axis(scale: Scale) -> ET.Element:
    group = _element("g", **{"class": "axis y"})
    for tick in scale.ticks():
        y = scale.y(tick)
        group.append(_line(PLOT_LEFT, y, PLOT_RIGHT, y, GRID_COLOR))
        label = _text(f"{tick:,}", x=PLOT_LEFT - 6, y=y + 4, size=10, color=MUTED_COLOR)
        label.set("text-anchor", "end")
        group.append(label)
    group.append(_line(PLOT_LEFT, PLOT_TOP, PLOT_LEFT, PLOT_BOTTOM, AXIS_COLOR))
    return group


def _x_axis(days: Sequence[tuple[date, int, int]], scale: Scale) -> ET.Element:
    group = _element("g", **{"class": "axis x"})
    zero_y = scale.y(0)
    group.append(_line(PLOT_LEFT, zero_y, PLOT_RIGHT, zero_y, AXIS_COLOR))
    band = _band_width(len(days))
    for index, (day, _, _) in enumerate(days):
        center = PLOT_LEFT + band * (index + 0.5)
        label = _text(str(day.day), x=center, y=PLOT_BOTTOM + 16, size=9, color=MUTED_COLOR)
        label.set("text-anchor", "middle")
        group.append(label)
    caption = _text("Day of month", x=PLOT_RIGHT, y=HEIGHT - 6, size=10, color=MUTED_COLOR)
    caption.set("text-anchor", "end")
    group.append(caption)
    return group


def _bars(days: Sequence[tuple[date, int, int]], scale: Scale) -> ET.Element:
    """Two bars per day, side by side in the day's band, each from zero to its value."""
    group = _element("g", **{"class": "bars"})
    band = _band_width(len(days))
    bar_width = band * 0.38
    for index, (day, issued, redeemed) in enumerate(days):
        band_left = PLOT_LEFT + band * index + band * 0.12
        for offset, series, points in ((0, ISSUED, issued), (1, REDEEMED, redeemed)):
            group.append(
                _bar(band_left + offset * bar_width, bar_width, day, series, points, scale)
            )
    return group


def _bar(
    x: float, width: float, day: date, series: Series, points: int, scale: Scale
) -> ET.Element:
    top, bottom = sorted((scale.y(points), scale.y(0)))
    return _element(
        "rect",
        x=x,
        y=top,
        width=width,
        height=bottom - top,
        fill=series.color,
        **{"class": f"bar {series.key}", "data-date": day.isoformat(), "data-points": str(points)},
    )


def _no_data_note() -> ET.Element:
    note = _text(
        "No points issued or redeemed this month",
        x=(PLOT_LEFT + PLOT_RIGHT) / 2,
        y=(PLOT_TOP + PLOT_BOTTOM) / 2,
        size=12,
        color=MUTED_COLOR,
    )
    note.set("text-anchor", "middle")
    return note


def _band_width(day_count: int) -> float:
    return (PLOT_RIGHT - PLOT_LEFT) / max(day_count, 1)


def _line(x1: float, y1: float, x2: float, y2: float, color: str) -> ET.Element:
    return _element("line", x1=x1, y1=y1, x2=x2, y2=y2, stroke=color, **{"stroke-width": 1})


def _text(content: str, *, x: float, y: float, size: int, color: str) -> ET.Element:
    element = _element("text", x=x, y=y, fill=color, **{"font-size": size})
    element.text = content
    return element


def _element(tag: str, **attributes: str | float) -> ET.Element:
    """An element whose numeric attributes are written with at most two decimals."""
    return ET.Element(tag, {name: _format(value) for name, value in attributes.items()})


def _format(value: str | float) -> str:
    if isinstance(value, str):
        return value
    rounded = round(value, 2) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{rounded:.2f}".rstrip("0").rstrip(".")
