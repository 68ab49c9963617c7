"""The monthly report's charts as the operator sees them: each merchant's net as a bar on its side
of zero, the flows as a heat map with a scale, a note instead of an empty picture, and bounded
sizes; the report's CSV and PDF from its plain mapping. No database."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any

from pypdf import PdfReader

from settlement.report_charts import (
    MAX_BARS,
    MAX_PARTIES,
    SHADES,
    Flow,
    flow_heatmap_svg,
    net_positions_svg,
)
from settlement.report_renditions import report_csv, report_pdf

SVG = "{http://www.w3.org/2000/svg}"


def _all(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}{tag}") if cls in (e.get("class") or "").split()]


def test_nets_are_bars_either_side_of_zero_from_the_largest_payer_down() -> None:
    nets = [("Bakery", Decimal("-0.78")), ("Cinema", Decimal("12.50")), ("Arcade", Decimal("-3"))]

    root = ET.fromstring(net_positions_svg(nets, currency="EUR"))

    bars = _all(root, "rect", "bar")
    assert [(b.get("data-name"), b.get("data-net")) for b in bars] == [
        ("Cinema", "12.50"),
        ("Bakery", "-0.78"),
        ("Arcade", "-3"),
    ]
    assert [b.get("class") for b in bars] == ["bar pays", "bar paid", "bar paid"]
    cinema, bakery, arcade = (float(b.get("x") or 0) for b in bars)
    # The payer's bar starts at zero and goes right; the others end at zero.
    assert cinema > arcade and cinema > bakery > arcade
    assert abs(float(bars[1].get("x") or 0) + float(bars[1].get("width") or 0) - cinema) < 0.02
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"Cinema", "Bakery", "Arcade", "EUR"} <= set(texts)
    assert not _all(root, "text", "no-data")


def test_more_merchants_than_bars_fold_the_smallest_into_others() -> None:
    nets = [(f"Shop {i:02}", Decimal(i - 15)) for i in range(40)]

    root = ET.fromstring(net_positions_svg(nets, currency="EUR"))

    bars = _all(root, "rect", "bar")
    assert len(bars) == MAX_BARS
    others = [b for b in bars if (b.get("data-name") or "").startswith("Others")]
    assert [o.get("data-name") for o in others] == ["Others (21)"]
    shown = sum(Decimal(b.get("data-net") or 0) for b in bars)
    assert shown == sum(net for _, net in nets)


def test_a_month_without_nets_or_flows_says_so() -> None:
    nets = ET.fromstring(net_positions_svg([], currency="EUR"))
    heat = ET.fromstring(flow_heatmap_svg([], {}, currency="EUR"))

    assert [t.text for t in _all(nets, "text", "no-data")] == ["No settled days this month"]
    assert [t.text for t in _all(heat, "text", "no-data")] == [
        "No points travelled between shops this month"
    ]
    assert not _all(nets, "rect", "bar") and not _all(heat, "rect", "cell")


def test_the_heat_map_shades_each_cell_by_its_money_and_labels_both_sides() -> None:
    names = {"mer_a": "A", "mer_b": "B", "operator": "Coalition operator"}
    flows = [
        Flow("mer_a", "mer_b", 80, Decimal("0.80")),
        Flow("operator", "mer_b", 90, Decimal("0.90")),
        Flow("mer_b", "mer_a", 50, Decimal("0.50")),
        Flow("mer_b", "operator", 30, Decimal("0.30")),
    ]

    root = ET.fromstring(flow_heatmap_svg(flows, names, currency="EUR"))

    cells = {
        (c.get("data-issuer"), c.get("data-redeemer")): (c.get("data-points"), c.get("fill"))
        for c in _all(root, "rect", "cell")
    }
    assert len(cells) == 9  # the operator, then B (1.70 moved) and A (1.30): 3 x 3
    assert cells[("operator", "mer_b")] == ("90", SHADES[-1])  # the largest is the darkest
    assert cells[("mer_b", "operator")] == ("30", SHADES[1])
    assert cells[("mer_a", "mer_a")][0] == "0" and cells[("mer_a", "mer_a")][1] not in SHADES
    issuers = [t.text for t in _all(root, "text", "issuer")]
    assert issuers == ["Coalition operator", "B", "A"]
    assert [t.text for t in _all(root, "text", "redeemer")] == issuers
    legend = _all(root, "g", "scale")[0]
    assert [r.get("fill") for r in legend.iter(f"{SVG}rect")] == list(SHADES)
    assert "Amount (EUR)" in [t.text for t in legend.iter(f"{SVG}text")]


def test_the_heat_map_keeps_the_biggest_merchants_and_folds_the_rest() -> None:
    names = {f"mer_{i}": f"Shop {i}" for i in range(30)}
    flows = [
        Flow(f"mer_{i}", f"mer_{(i + 1) % 30}", 100 + i, Decimal(100 + i) / 100) for i in range(30)
    ]

    root = ET.fromstring(flow_heatmap_svg(flows, names, currency="EUR"))

    rows = [t.text for t in _all(root, "text", "issuer")]
    assert len(rows) == MAX_PARTIES + 1 and rows[-1] == "Others (10)"
    total = sum(int(c.get("data-points") or 0) for c in _all(root, "rect", "cell"))
    assert total == sum(f.points for f in flows)  # nothing is dropped, only folded


def test_charts_are_the_same_svg_for_the_same_data_and_carry_no_style_or_script() -> None:
    nets = [("Café Nord", Decimal("1.125")), ("Bäckerei <&>", Decimal("-2"))]
    flows = [Flow("a", "b", 10, Decimal("0.10"))]
    names = {"a": "Café Nord", "b": "Bäckerei <&>"}

    first = net_positions_svg(nets, currency="EUR") + flow_heatmap_svg(flows, names, currency="EUR")
    again = net_positions_svg(list(reversed(nets)), currency="EUR") + flow_heatmap_svg(
        flows, dict(reversed(names.items())), currency="EUR"
    )

    assert first == again
    for svg in (
        net_positions_svg(nets, currency="EUR"),
        flow_heatmap_svg(flows, names, currency="EUR"),
    ):
        root = ET.fromstring(svg)
        tags = {e.tag.removeprefix(SVG) for e in root.iter()}
        assert tags <= {"svg", "g", "rect", "line", "text"}
        assert "style" not in svg and "script" not in svg and "href" not in svg


def _report(**overrides: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "month": "2026-10",
        "currency": "EUR",
        "days": 31,
        "settled_days": 31,
        "nets": "-0.20",
        "positions": [
            {
                "merchant": {"id": "mer_a", "name": "Café Nord"},
                "issued": 80,
                "redeemed": 50,
                "owed": "1.00",
                "receivable": "1.00",
                "net": "0.00",
            },
            {
                "merchant": {"id": "mer_b", "name": "=Bakery"},
                "issued": 120,
                "redeemed": 170,
                "owed": "1.50",
                "receivable": "1.70",
                "net": "-0.20",
            },
        ],
        "flows": [
            {
                "issuer": {"id": "mer_a", "name": "Café Nord"},
                "redeemer": {"id": "mer_b", "name": "=Bakery"},
                "points": 80,
                "amount": "0.80",
            }
        ],
    }
    report.update(overrides)
    return report


def test_the_report_csv_has_the_merchants_and_flows_and_defuses_formulas() -> None:
    rows = list(csv.reader(io.StringIO(report_csv(_report()), newline="")))

    assert rows[1] == ["month", "2026-10"]
    assert ["mer_b", "'=Bakery", "120", "170", "1.50", "1.70", "-0.20"] in rows
    assert ["mer_a", "Café Nord", "mer_b", "'=Bakery", "80", "0.80"] in rows


def test_the_report_pdf_names_the_month_and_merchants_and_is_deterministic() -> None:
    pdf = report_pdf(_report())

    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "October 2026" in text and "Café Nord" in text and "=Bakery" in text
    assert "Net position per merchant" in text and "Amount (EUR)" in text
    assert pdf == report_pdf(_report())


def test_the_pdf_of_an_empty_month_says_there_is_nothing_yet() -> None:
    pdf = report_pdf(_report(positions=[], flows=[], settled_days=0, nets="0"))

    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "0 of 31 days settled" in text and "No settled positions this month" in text
