"""The portal dashboard's chart: points issued vs redeemed each day of the last 60, as an inline
SVG drawn on the server with ElementTree and presentation attributes only (no style, no script),
as settlement/charts.py draws the statement's month. Merchants may not import settlement
(pyproject's import-linter contract), hence this small module; its labels come translated from
the caller."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from datetime import date

from coalition.web.svg import FONT_FAMILY, SVG_NAMESPACE, attrs, text

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 60, WIDTH - 12, 56, HEIGHT - 40
TICKS = 4
TEXT, MUTED, GRID, AXIS = "#1a202c", "#4a5568", "#e2e8f0", "#718096"
ISSUED, REDEEMED = "#2b6cb0", "#c05621"


def daily_svg(
    days: Sequence[tuple[date, int, int]],
    *,
    title: str,
    issued_label: str,
    redeemed_label: str,
    day_label: Callable[[date], str],
    empty_note: str,
) -> str:
    """Two bars a day, issued and redeemed, for each `(day, issued, redeemed)`; every seventh
    day is named under the axis. Deterministic for the same input."""
    high = max([0, *(v for _, issued, redeemed in days for v in (issued, redeemed))])
    step = _nice(max(high, 1) / TICKS)
    top = max(math.ceil(high / step) * step, step)

    def y(points: int) -> float:
        return BOTTOM - points / top * (BOTTOM - TOP)

    root = ET.Element(
        "svg",
        {
            "xmlns": SVG_NAMESPACE,
            "viewBox": f"0 0 {WIDTH} {HEIGHT}",
            "role": "img",
            "aria-label": title,
            "font-family": FONT_FAMILY,
        },
    )
    heading = ET.SubElement(root, "title")
    heading.text = title
    ET.SubElement(root, "rect", attrs(x=0, y=0, width=WIDTH, height=HEIGHT, fill="#ffffff"))
    text(root, title, x=LEFT, y=22, size=14, color=TEXT)
    for index, (label, color) in enumerate(((issued_label, ISSUED), (redeemed_label, REDEEMED))):
        x = LEFT + index * 200
        ET.SubElement(root, "rect", attrs(x=x, y=32, width=12, height=12, fill=color))
        text(root, label, x=x + 18, y=43, size=11, color=TEXT)
    for tick in range(0, top + 1, step):
        ET.SubElement(root, "line", attrs(x1=LEFT, y1=y(tick), x2=RIGHT, y2=y(tick), stroke=GRID))
        text(
            root,
            f"{tick:,}".replace(",", " "),
            x=LEFT - 6,
            y=y(tick) + 4,
            size=10,
            color=MUTED,
            anchor="end",
        )
    band = (RIGHT - LEFT) / max(len(days), 1)
    bar = band * 0.4
    for index, (day, issued, redeemed) in enumerate(days):
        left = LEFT + band * index + band * 0.1
        for offset, color, points, key in (
            (0, ISSUED, issued, "issued"),
            (1, REDEEMED, redeemed, "redeemed"),
        ):
            ET.SubElement(
                root,
                "rect",
                attrs(
                    x=left + offset * bar,
                    y=y(points),
                    width=bar,
                    height=BOTTOM - y(points),
                    fill=color,
                    **{
                        "class": f"bar {key}",
                        "data-date": day.isoformat(),
                        "data-points": str(points),
                    },
                ),
            )
        if (len(days) - 1 - index) % 7 == 0:
            text(
                root,
                day_label(day),
                x=LEFT + band * (index + 0.5),
                y=BOTTOM + 16,
                size=9,
                color=MUTED,
                anchor="middle",
            )
    ET.SubElement(root, "line", attrs(x1=LEFT, y1=BOTTOM, x2=RIGHT, y2=BOTTOM, stroke=AXIS))
    if high == 0:
        text(
            root,
            empty_note,
            x=(LEFT + RIGHT) / 2,
            y=(TOP + BOTTOM) / 2,
            size=12,
            color=MUTED,
            anchor="middle",
        )
    return ET.tostring(root, encoding="unicode")


def _nice(raw: float) -> int:
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return max(int(factor * magnitude), 1)
    return int(10 * magnitude)
