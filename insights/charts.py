"""The insights' pictures, drawn on the server as SVG with presentation attributes only (no
style, no script, so the strict CSP holds): the cohort triangle as a heat map, the concentration
curve (Lorenz-like, against the line of equal shares), and the net position by month as bars.
Labels come translated from the caller; the same input draws the same picture."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from coalition.web.svg import FONT_FAMILY, SVG_NAMESPACE, attrs, number, text

TEXT, MUTED, GRID, AXIS = "#1a202c", "#4a5568", "#e2e8f0", "#718096"
CURVE, EQUAL, PAYS, PAID = "#2b6cb0", "#a0aec0", "#c05621", "#2f855a"


def _root(title: str, width: int, height: int) -> ET.Element:
    root = ET.Element(
        "svg",
        {
            "xmlns": SVG_NAMESPACE,
            "viewBox": f"0 0 {width} {height}",
            "role": "img",
            "aria-label": title,
            "font-family": FONT_FAMILY,
        },
    )
    ET.SubElement(root, "title").text = title
    ET.SubElement(root, "rect", attrs(x=0, y=0, width=width, height=height, fill="#ffffff"))
    text(root, title, x=12, y=22, size=14, color=TEXT)
    return root


def cohort_heatmap_svg(
    cohorts: Sequence[dict[str, Any]], *, title: str, since_label: str, empty_note: str
) -> str:
    """One row per cohort, one cell per month since its first: the share of the cohort active
    then, the darker the more (the count written in the cell)."""
    months = max([len(row["active"]) for row in cohorts] or [1])
    cell, left, top = 44, 80, 56
    width = max(left + months * cell + 12, 760)
    height = top + max(len(cohorts), 1) * 28 + 24
    root = _root(title, width, height)
    text(root, since_label, x=left, y=42, size=11, color=MUTED)
    for k in range(months):
        text(
            root,
            str(k),
            x=left + k * cell + cell / 2,
            y=top - 2,
            size=10,
            color=MUTED,
            anchor="middle",
        )
    for index, row in enumerate(cohorts):
        y = top + 4 + index * 28
        text(root, row["month"], x=left - 8, y=y + 17, size=11, color=TEXT, anchor="end")
        for k, active in enumerate(row["active"]):
            share = active / row["members"] if row["members"] else 0
            light = int(235 - share * 170)
            fill = f"#{light // 3:02x}{light // 2 + 40:02x}{min(light + 20, 255):02x}"
            rect = ET.SubElement(
                root,
                "rect",
                attrs(x=left + k * cell + 1, y=y, width=cell - 2, height=24, fill=fill),
            )
            ET.SubElement(rect, "title").text = f"{row['month']} +{k}: {active}/{row['members']}"
            text(
                root,
                str(active),
                x=left + k * cell + cell / 2,
                y=y + 16,
                size=10,
                color="#ffffff" if share > 0.45 else TEXT,
                anchor="middle",
            )
    if not cohorts:
        text(root, empty_note, x=width / 2, y=top + 20, size=12, color=MUTED, anchor="middle")
    return ET.tostring(root, encoding="unicode")


def concentration_svg(
    curve: Sequence[dict[str, Any]],
    *,
    title: str,
    customers_label: str,
    sales_label: str,
    equal_label: str,
) -> str:
    """Cumulative share of sales (up) against the share of customers, biggest first (across),
    and the diagonal a coalition of equal customers would draw."""
    width, height, left, right, top, bottom = 760, 340, 70, 560, 48, 296

    def x(percent: float) -> float:
        return left + percent / 100 * (right - left)

    def y(share: float) -> float:
        return bottom - share * (bottom - top)

    root = _root(title, width, height)
    for tick in (0, 25, 50, 75, 100):
        ET.SubElement(
            root, "line", attrs(x1=left, y1=y(tick / 100), x2=right, y2=y(tick / 100), stroke=GRID)
        )
        text(root, f"{tick} %", x=left - 6, y=y(tick / 100) + 4, size=10, color=MUTED, anchor="end")
        text(root, f"{tick} %", x=x(tick), y=bottom + 16, size=10, color=MUTED, anchor="middle")
    ET.SubElement(
        root,
        "line",
        attrs(x1=x(0), y1=y(0), x2=x(100), y2=y(1), stroke=EQUAL, **{"stroke-dasharray": "4 4"}),
    )
    points = " ".join(
        f"{number(x(p['customers_percent']))},{number(y(float(Decimal(p['sales_share']))))}"
        for p in curve
    )
    ET.SubElement(
        root, "polyline", {"points": points, "fill": "none", "stroke": CURVE, "stroke-width": "2"}
    )
    for p in curve:
        ET.SubElement(
            root,
            "circle",
            attrs(
                cx=x(p["customers_percent"]),
                cy=y(float(Decimal(p["sales_share"]))),
                r=3,
                fill=CURVE,
            ),
        )
    text(
        root,
        customers_label,
        x=(left + right) / 2,
        y=bottom + 34,
        size=11,
        color=TEXT,
        anchor="middle",
    )
    text(root, sales_label, x=left, y=top - 6, size=11, color=TEXT)
    text(root, equal_label, x=x(70), y=y(0.62), size=10, color=MUTED, anchor="middle")
    for index, p in enumerate(curve[1:]):
        text(
            root,
            f"{p['customers_percent']} %: {Decimal(p['sales_share']) * 100:.1f} %",
            x=right + 30,
            y=top + 14 + index * 22,
            size=11,
            color=TEXT,
        )
    return ET.tostring(root, encoding="unicode")


def net_by_month_svg(
    months: Sequence[dict[str, Any]], *, title: str, pays_label: str, paid_label: str
) -> str:
    """A bar a month from the zero line: up (orange) when the merchant paid the coalition, down
    (green) when the coalition paid it."""
    width, height, left, right, top, bottom = 760, 300, 70, 748, 48, 260
    nets = [Decimal(row["net"]) for row in months]
    high = max([abs(n) for n in nets] + [Decimal(1)])
    middle = (top + bottom) / 2
    root = _root(title, width, height)
    ET.SubElement(root, "rect", attrs(x=420, y=12, width=12, height=12, fill=PAYS))
    text(root, pays_label, x=438, y=23, size=11, color=TEXT)
    ET.SubElement(root, "rect", attrs(x=590, y=12, width=12, height=12, fill=PAID))
    text(root, paid_label, x=608, y=23, size=11, color=TEXT)
    slot = (right - left) / max(len(months), 1)
    for sign in (1, -1):
        text(
            root,
            f"{sign * high:.2f}",
            x=left - 6,
            y=(top if sign > 0 else bottom) + 4,
            size=10,
            color=MUTED,
            anchor="end",
        )
    text(root, "0", x=left - 6, y=middle + 4, size=10, color=MUTED, anchor="end")
    for index, (row, net) in enumerate(zip(months, nets, strict=True)):
        extent = float(abs(net) / high) * (middle - top)
        bar = ET.SubElement(
            root,
            "rect",
            attrs(
                x=left + index * slot + slot * 0.15,
                y=middle - extent if net > 0 else middle,
                width=slot * 0.7,
                height=max(extent, 0.5 if net else 0),
                fill=PAYS if net > 0 else PAID,
            ),
        )
        ET.SubElement(bar, "title").text = f"{row['month']}: {row['net']} {row['currency']}"
        text(
            root,
            row["month"][2:],
            x=left + index * slot + slot / 2,
            y=bottom + 18,
            size=9,
            color=MUTED,
            anchor="middle",
        )
    ET.SubElement(root, "line", attrs(x1=left, y1=middle, x2=right, y2=middle, stroke=AXIS))
    return ET.tostring(root, encoding="unicode")
