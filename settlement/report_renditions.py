"""Renditions of the operator's monthly report (`settlement.reports.month_report`) for people: CSV
for spreadsheets and an A4 PDF with the net positions' bar chart and the flows' heat map, then
the rewards redeemed per supplier and the prize draws' entries (issue 15).

Like the statement's renditions (`settlement.renditions`), they work from the report's plain
mapping, need no database, show exact amounts as the decimal strings they are (never a float),
write in DejaVu Sans when it is installed, and draw the same SVG the console shows as vector
graphics. Both are in English, as the statements are (decision 158)."""

from __future__ import annotations

import calendar
import csv
import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fpdf.fonts import FontFace

from settlement.renditions import (
    DEJAVU_SANS_PATHS,
    MUTED_RGB,
    TEXT_RGB,
    StatementDocument,
    _amount,
    _load_typeface,
    _safe_text,
)
from settlement.report_charts import (
    WIDTH as CHART_WIDTH,
)
from settlement.report_charts import (
    Flow,
    FlowLabels,
    NetLabels,
    flow_heatmap_svg,
    net_positions_svg,
)

Report = Mapping[str, Any]

POSITION_COLUMNS = (
    "merchant_id",
    "merchant_name",
    "issued",
    "redeemed",
    "owed",
    "receivable",
    "net",
)
FLOW_COLUMNS = ("issuer_id", "issuer_name", "redeemer_id", "redeemer_name", "points", "amount")
REWARD_COLUMNS = ("supplier_id", "supplier_name", "orders", "cancelled", "points", "reimbursed")
BODY_SIZE = 9


def net_bars(report: Report) -> list[tuple[str, Decimal]]:
    """The bar chart's input: each merchant's name and exact net for the month."""
    return [(p["merchant"]["name"], Decimal(p["net"])) for p in report["positions"]]


def flow_cells(report: Report) -> tuple[list[Flow], dict[str, str]]:
    """The heat map's input: the month's flows by party id, and each party's name."""
    names: dict[str, str] = {}
    cells = []
    for flow in report["flows"]:
        names[flow["issuer"]["id"]] = flow["issuer"]["name"]
        names[flow["redeemer"]["id"]] = flow["redeemer"]["name"]
        cells.append(
            Flow(
                flow["issuer"]["id"],
                flow["redeemer"]["id"],
                int(flow["points"]),
                Decimal(flow["amount"]),
            )
        )
    return cells, names


def report_csv(report: Report) -> str:
    """The report as RFC 4180 CSV (CRLF line ends) in blocks separated by an empty row: a
    `field,value` header, each merchant's month, each issuer x redeemer flow, then (when the
    report has them) the rewards redeemed per supplier, closed by the draw entries' figures as
    `field,value` rows. The operator reimburses nobody for its own rewards: its `reimbursed`
    is empty."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(
        [
            ["report", "monthly settlement"],
            ["month", report["month"]],
            ["currency", report["currency"]],
            ["settled_days", f"{report['settled_days']} of {report['days']}"],
            ["nets", _amount(report["nets"])],
        ]
    )
    if "premium" in report:
        premium = report["premium"]
        writer.writerows(
            [
                ["premium_memberships_paid", str(int(premium["count"]))],
                ["premium_revenue", _amount(premium["amount"])],
                ["premium_refunded", _amount(premium["refunded"])],
                ["premium_net", _amount(premium["net"])],
            ]
        )
    writer.writerow([])
    writer.writerow(POSITION_COLUMNS)
    for p in report["positions"]:
        writer.writerow(
            [
                _safe_text(p["merchant"]["id"]),
                _safe_text(p["merchant"]["name"]),
                str(int(p["issued"])),
                str(int(p["redeemed"])),
                _amount(p["owed"]),
                _amount(p["receivable"]),
                _amount(p["net"]),
            ]
        )
    writer.writerow([])
    writer.writerow(FLOW_COLUMNS)
    for flow in report["flows"]:
        writer.writerow(
            [
                _safe_text(flow["issuer"]["id"]),
                _safe_text(flow["issuer"]["name"]),
                _safe_text(flow["redeemer"]["id"]),
                _safe_text(flow["redeemer"]["name"]),
                str(int(flow["points"])),
                _amount(flow["amount"]),
            ]
        )
    if "rewards" in report:
        _rewards_csv(writer, report["rewards"])
    return buffer.getvalue()


def _rewards_csv(writer: Any, rewards: Mapping[str, Any]) -> None:
    writer.writerow([])
    writer.writerow(REWARD_COLUMNS)
    for line in rewards["suppliers"]:
        writer.writerow(
            [
                _safe_text(line["supplier"]["id"]),
                _safe_text(line["supplier"]["name"]),
                str(int(line["orders"])),
                str(int(line["cancelled"])),
                str(int(line["points"])),
                "" if line["reimbursed"] is None else _amount(line["reimbursed"]),
            ]
        )
    entries = rewards["draw_entries"]
    writer.writerow([])
    writer.writerows(
        [
            ["draw_entries", str(int(entries["entries"]))],
            ["draw_entries_refunded", str(int(entries["refunded"]))],
            ["draw_entry_points", str(int(entries["points"]))],
            ["draw_entries_charged", _amount(entries["charged"])],
        ]
    )


def _month_name(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return f"{calendar.month_name[number]} {year}"


def report_pdf(report: Report, *, font_paths: Sequence[Path] = DEJAVU_SANS_PATHS) -> bytes:
    """The report as an A4 PDF: heading, the net positions' chart and table, the flows' heat map
    and table, and the month's premium memberships. The same bytes for the same report (its
    creation date is the month's first day)."""
    month = report["month"]
    pdf = StatementDocument(footer_text=f"Monthly settlement report {month}")
    pdf.typeface = _load_typeface(pdf, font_paths)
    clean = pdf.typeface.clean
    year, number = (int(part) for part in month.split("-"))
    pdf.set_title(f"Monthly settlement report {month}")
    pdf.set_author("Coalition")
    pdf.set_creator("Coalition")
    pdf.set_lang("en")
    pdf.set_creation_date(datetime(year, number, 1, tzinfo=UTC))
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    pdf.set_text_color(*TEXT_RGB)
    pdf.set_font(pdf.typeface.family, "B", 18)
    pdf.cell(0, 10, "Monthly settlement report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.typeface.family, "B", 13)
    pdf.cell(0, 8, f"{_month_name(month)} ({month})", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.typeface.family, "", 10)
    pdf.set_text_color(*MUTED_RGB)
    summary = (
        f"{report['settled_days']} of {report['days']} days settled. Currency"
        f" {report['currency']}. The merchants' nets add up to {report['nets']}"
        " (positive: merchants pay the operator)."
    )
    pdf.multi_cell(0, 5, summary, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*TEXT_RGB)
    pdf.ln(3)
    net_svg = net_positions_svg(
        [(clean(name), net) for name, net in net_bars(report)],
        currency=report["currency"],
        labels=NetLabels(others="Others ({n})"),
    )
    _svg(pdf, net_svg)
    _positions_table(pdf, report)
    cells, names = flow_cells(report)
    flow_svg = flow_heatmap_svg(
        cells,
        {key: clean(name) for key, name in names.items()},
        currency=report["currency"],
        labels=FlowLabels(),
    )
    _svg(pdf, flow_svg)
    _flows_table(pdf, report)
    if "rewards" in report:
        _rewards_tables(pdf, report)
    if "premium" in report:
        _premium_table(pdf, report)
    return bytes(pdf.output())


def _premium_table(pdf: StatementDocument, report: Report) -> None:
    """The month's premium memberships: the operator's own revenue, outside settlement."""
    premium = report["premium"]
    pdf.set_font(pdf.typeface.family, "B", 12)
    pdf.cell(0, 8, "Premium memberships", new_x="LMARGIN", new_y="NEXT")
    _table(
        pdf,
        ["Memberships paid", f"Revenue ({report['currency']})", "Refunded", "Net"],
        [
            [
                str(int(premium["count"])),
                _amount(premium["amount"]),
                _amount(premium["refunded"]),
                _amount(premium["net"]),
            ]
        ],
        "No premium membership was paid this month.",
        texts=0,
    )


def _rewards_tables(pdf: StatementDocument, report: Report) -> None:
    """The rewards redeemed per supplier, and the prize draws' entries."""
    currency = report["currency"]
    rewards = report["rewards"]
    pdf.set_font(pdf.typeface.family, "B", 12)
    pdf.cell(0, 8, "Rewards redeemed per supplier", new_x="LMARGIN", new_y="NEXT")
    _table(
        pdf,
        ("Supplier", "Orders", "Cancelled", "Points", f"Reimbursed ({currency})"),
        [
            (
                line["supplier"]["name"],
                f"{int(line['orders']):,}",
                f"{int(line['cancelled']):,}",
                f"{int(line['points']):,}",
                "its own" if line["reimbursed"] is None else _amount(line["reimbursed"]),
            )
            for line in rewards["suppliers"]
        ],
        "No reward was ordered this month",
        texts=1,
    )
    entries = rewards["draw_entries"]
    pdf.set_font(pdf.typeface.family, "B", 12)
    pdf.cell(0, 8, "Prize draw entries", new_x="LMARGIN", new_y="NEXT")
    _table(
        pdf,
        ["Entries", "Refunded", "Points", f"Charged to issuers ({currency})"],
        [
            [
                str(int(entries["entries"])),
                str(int(entries["refunded"])),
                f"{int(entries['points']):,}",
                _amount(entries["charged"]),
            ]
        ],
        "No prize draw was entered this month.",
        texts=0,
    )


def _svg(pdf: StatementDocument, svg: str) -> None:
    height_px = float(svg.split('height="', 1)[1].split('"', 1)[0])
    height = pdf.epw * height_px / CHART_WIDTH
    if pdf.will_page_break(height):
        pdf.add_page()
    pdf.image(io.BytesIO(svg.encode("utf-8")), x=pdf.l_margin, y=pdf.y, w=pdf.epw, h=height)
    pdf.set_y(pdf.y + height + 3)


def _table(
    pdf: StatementDocument,
    headings: Sequence[str],
    rows: Sequence[Sequence[str]],
    empty: str,
    *,
    texts: int,
) -> None:
    """A table whose first `texts` columns are words and the rest numbers (right-aligned)."""
    pdf.set_font(pdf.typeface.family, "", BODY_SIZE)
    numeric = [index >= texts for index in range(len(headings))]
    with pdf.table(
        col_widths=[3 if not n else 2 for n in numeric],
        borders_layout="HORIZONTAL_LINES",
        line_height=5,
        padding=(1, 1),
        text_align="LEFT",
        headings_style=FontFace(emphasis="BOLD", fill_color=(237, 242, 247)),
        cell_fill_mode="NONE",
    ) as table:
        heading = table.row()
        for title, is_number in zip(headings, numeric, strict=True):
            heading.cell(title, align="RIGHT" if is_number else "LEFT")
        for values in rows:
            row = table.row()
            for value, is_number in zip(values, numeric, strict=True):
                row.cell(pdf.typeface.clean(value), align="RIGHT" if is_number else "LEFT")
        if not rows:
            table.row().cell(empty, colspan=len(headings), style=FontFace(color=MUTED_RGB))
    pdf.ln(4)


def _positions_table(pdf: StatementDocument, report: Report) -> None:
    currency = report["currency"]
    _table(
        pdf,
        (
            "Merchant",
            "Issued",
            "Redeemed",
            f"Owed ({currency})",
            f"Receivable ({currency})",
            f"Net ({currency})",
        ),
        [
            (
                p["merchant"]["name"],
                f"{int(p['issued']):,}",
                f"{int(p['redeemed']):,}",
                _amount(p["owed"]),
                _amount(p["receivable"]),
                _amount(p["net"]),
            )
            for p in report["positions"]
        ],
        "No settled positions this month",
        texts=1,
    )


def _flows_table(pdf: StatementDocument, report: Report) -> None:
    _table(
        pdf,
        ("Issuer", "Redeemer", "Points", f"Amount ({report['currency']})"),
        [
            (
                flow["issuer"]["name"],
                flow["redeemer"]["name"],
                f"{int(flow['points']):,}",
                _amount(flow["amount"]),
            )
            for flow in report["flows"]
        ],
        "No points travelled between shops this month",
        texts=2,
    )
