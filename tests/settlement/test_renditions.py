"""The statement as a merchant receives it: a CSV that opens in a spreadsheet, a PDF that reads as
a statement with its chart drawn as vector graphics, and the chart's SVG on its own. No database:
renditions work from the statement's plain mapping."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from pypdf.generic import ContentStream

from settlement.charts import daily_points_svg
from settlement.renditions import DEJAVU_SANS_PATHS, statement_csv, statement_pdf

SVG = "{http://www.w3.org/2000/svg}"
OCTOBER = [date(2026, 10, 1) + timedelta(days=offset) for offset in range(31)]


def euros(amount_minor: int) -> dict[str, Any]:
    return {"amount": amount_minor, "currency": "EUR"}


def make_statement(**overrides: Any) -> dict[str, Any]:
    """An issued October statement, as the API serialises it, whose lines and rounding add up
    to its net: exact amounts as decimal strings, rounded ones as money in minor units."""
    statement: dict[str, Any] = {
        "id": "stm_01JB7Z",
        "merchant": {"id": "mer_7", "name": "Café Nord"},
        "month": "2026-10",
        "currency": "EUR",
        "status": "issued",
        "issued_at": "2026-11-01T00:05:00+00:00",
        "opening": euros(140),
        "carried": [],
        "lines": [
            {
                "kind": "issue_charges",
                "description": "Points issued: 200 \N{MULTIPLICATION SIGN} 0.0125",
                "amount": "2.50",
            },
            {
                "kind": "redemption_credits",
                "description": "Points redeemed: 216 \N{MULTIPLICATION SIGN} 0.0125",
                "amount": "-2.70",
            },
            {"kind": "fees", "description": "Platform fee, 0.5 % of 225.00", "amount": "-1.125"},
            {"kind": "adjustments", "description": "Goodwill credit", "amount": "1.120"},
        ],
        "exact_net": "-0.205",
        "rounding": "0.005",
        "net": euros(-20),
        "closing": euros(120),
        "days": [
            {"date": day.isoformat(), "issued": (day.day * 37) % 400, "redeemed": day.day * 3}
            for day in OCTOBER
        ],
    }
    statement.update(overrides)
    return statement


def csv_blocks(text: str) -> list[list[list[str]]]:
    """The CSV's records, split into the blocks that empty records separate."""
    blocks: list[list[list[str]]] = [[]]
    for record in csv.reader(io.StringIO(text, newline="")):
        if record:
            blocks[-1].append(record)
        else:
            blocks.append([])
    return blocks


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_csv_reads_back_into_the_statements_header_lines_and_totals() -> None:
    statement = make_statement()

    header, lines, totals = csv_blocks(statement_csv(statement))

    assert dict(header) == {
        "statement": "stm_01JB7Z",
        "merchant_id": "mer_7",
        "merchant_name": "Café Nord",
        "month": "2026-10",
        "currency": "EUR",
        "status": "issued",
        "issued_at": "2026-11-01T00:05:00+00:00",
        "summary": "Café Nord pays the coalition EUR 1.20.",
    }
    assert lines[0] == ["kind", "description", "amount"]
    assert lines[1:-1] == [
        [line["kind"], line["description"], line["amount"]] for line in statement["lines"]
    ]
    assert lines[-1] == ["rounding", "Rounding", "0.005"]
    assert dict(totals) == {"opening": "1.40", "net": "-0.20", "closing": "1.20"}


def test_csv_lines_and_rounding_add_up_to_the_net_and_opening_plus_net_is_closing() -> None:
    _, lines, totals = csv_blocks(statement_csv(make_statement()))

    amounts = [Decimal(amount) for _, _, amount in lines[1:]]
    total = dict(totals)
    assert sum(amounts, Decimal(0)) == Decimal(total["net"])
    assert Decimal(total["opening"]) + Decimal(total["net"]) == Decimal(total["closing"])


def test_csv_is_rfc_4180_with_crlf_records_and_quoted_fields() -> None:
    statement = make_statement(
        lines=[{"kind": "fees", "description": 'Fee, "monthly"\nsecond line', "amount": "-1.00"}],
        exact_net="-1.00",
        rounding="0.00",
        net=euros(-100),
        closing=euros(40),
    )

    text = statement_csv(statement)

    assert text.startswith("statement,stm_01JB7Z\r\n")
    assert 'fees,"Fee, ""monthly""\nsecond line",-1.00\r\n' in text
    _, lines, _ = csv_blocks(text)
    assert lines[1] == ["fees", 'Fee, "monthly"\nsecond line', "-1.00"]


def test_csv_keeps_a_merchant_name_from_running_as_a_spreadsheet_formula() -> None:
    statement = make_statement(merchant={"id": "mer_7", "name": '=HYPERLINK("http://x","y")'})

    header, _, totals = csv_blocks(statement_csv(statement))

    assert dict(header)["merchant_name"] == '\'=HYPERLINK("http://x","y")'
    assert dict(header)["summary"].startswith('\'=HYPERLINK("http://x","y") pays')
    assert dict(totals)["net"] == "-0.20"  # a negative amount keeps its sign


@pytest.mark.parametrize("amount", [2.5, "2,50", "NaN", ""])
def test_csv_refuses_an_amount_that_is_not_a_decimal_string(amount: object) -> None:
    statement = make_statement(
        lines=[{"kind": "fees", "description": "Fee", "amount": amount}],
    )

    with pytest.raises((TypeError, ValueError)):
        statement_csv(statement)


@pytest.mark.parametrize("name", ["Café Nord", "Łódź Piekarnia", "Москва Кофе"])
def test_pdf_shows_the_merchant_month_every_line_amount_and_the_closing(name: str) -> None:
    statement = make_statement(merchant={"id": "mer_7", "name": name})

    pdf = statement_pdf(statement)

    assert pdf.startswith(b"%PDF-")
    text = pdf_text(pdf)
    assert name in text
    assert "mer_7" in text
    assert "2026-10" in text
    for line in statement["lines"]:
        assert line["amount"] in text
        assert line["description"] in text
    assert "Rounding 0.005 EUR" in text
    assert "Closing balance 1.20 EUR" in text
    assert f"{name} pays the coalition EUR 1.20." in text


def test_pdf_says_who_pays_whom_and_why_an_opening_balance_is_there() -> None:
    statement = make_statement(
        opening=euros(-200),
        carried=[{"statement": "stm_OCT", "month": "2026-09", "amount": euros(-200)}],
        closing=euros(-220),
    )

    text = pdf_text(statement_pdf(statement))

    assert "The coalition pays Café Nord EUR 2.20." in text
    assert "Carried from stm_OCT (2026-09), whose payout failed: -2.00 EUR" in text
    assert "Opening balance -2.00 EUR" in text


def test_pdf_has_a_unicode_title_and_is_the_same_bytes_every_time() -> None:
    statement = make_statement(merchant={"id": "mer_7", "name": "Москва Кофе"})

    first, second = statement_pdf(statement), statement_pdf(statement)

    assert first == second
    metadata = PdfReader(io.BytesIO(first)).metadata
    assert metadata is not None
    assert metadata.title == "Settlement statement 2026-10 for Москва Кофе"
    assert metadata.creation_date is not None
    assert metadata.creation_date.isoformat().startswith("2026-11-01T00:05:00")


def test_pdf_draws_the_chart_as_vector_paths_not_an_image() -> None:
    statement = make_statement()

    page = PdfReader(io.BytesIO(statement_pdf(statement))).pages[0]

    assert list(page.images) == []  # neither an image XObject nor an inline image
    operations = ContentStream(page.get_contents(), page.pdf).operations
    rectangles = [operands for operands, operator in operations if operator == b"re"]
    assert len(rectangles) >= 2 * len(statement["days"])  # a bar per day for each series
    assert "Points issued and redeemed per day, 2026-10" in page.extract_text()


def test_pdf_of_a_quiet_month_with_no_lines_and_no_days_still_renders() -> None:
    statement = make_statement(
        lines=[],
        exact_net="0.00",
        rounding="0.00",
        net=euros(0),
        opening=euros(0),
        closing=euros(0),
    )
    statement["days"] = []

    text = pdf_text(statement_pdf(statement))

    assert "No lines this month" in text
    assert "No points issued or redeemed this month" in text
    assert "Closing balance 0.00 EUR" in text
    assert "Nothing to pay: Café Nord and the coalition are even." in text


def test_pdf_without_a_unicode_font_uses_a_core_font_and_replaces_what_it_cannot_show(
    tmp_path: Path,
) -> None:
    statement = make_statement(merchant={"id": "mer_7", "name": "Café Łódź — Москва"})

    pdf = statement_pdf(statement, font_paths=(tmp_path / "missing.ttf",))

    text = pdf_text(pdf)
    assert "Café ?ódz - ??????" in text
    assert "Closing balance 1.20 EUR" in text


def test_the_unicode_font_is_installed_where_the_statement_looks_for_it() -> None:
    # The fallback above is for other machines; here a statement should be in DejaVu Sans.
    assert any(path.is_file() for path in DEJAVU_SANS_PATHS)


def test_svg_is_standalone_xml_without_script_css_or_external_references() -> None:
    svg = daily_points_svg([(day, 10, 5) for day in OCTOBER], title="Points & <more>")

    root = ET.fromstring(svg)

    assert root.tag == f"{SVG}svg"
    assert root.get("viewBox") == "0 0 720 300"
    tags = {element.tag.removeprefix(SVG) for element in root.iter()}
    assert tags <= {"svg", "g", "rect", "line", "text"}
    attributes = {name for element in root.iter() for name in element.attrib}
    assert not any(name.startswith("on") or name.endswith("href") for name in attributes)
    assert not svg.startswith("<?xml")  # embeddable inline in an HTML page


def test_svg_has_a_bar_per_day_for_each_series_with_its_points() -> None:
    days = [(day, day.day * 10, day.day) for day in OCTOBER]

    root = ET.fromstring(daily_points_svg(days, title="October"))

    for series, column in (("issued", 1), ("redeemed", 2)):
        bars = [bar for bar in root.iter(f"{SVG}rect") if bar.get("class") == f"bar {series}"]
        assert [bar.get("data-date") for bar in bars] == [day.isoformat() for day in OCTOBER]
        assert [int(bar.get("data-points", "")) for bar in bars] == [row[column] for row in days]
    heights = [float(bar.get("height", "")) for bar in root.iter(f"{SVG}rect")]
    assert all(height >= 0 for height in heights)


def test_svg_shows_its_title_legend_and_day_labels() -> None:
    root = ET.fromstring(daily_points_svg([(day, 1, 1) for day in OCTOBER], title="Café Nord"))

    texts = [element.text for element in root.iter(f"{SVG}text")]
    x_axis = next(group for group in root.iter(f"{SVG}g") if group.get("class") == "axis x")
    day_labels = [label.text for label in x_axis.iter(f"{SVG}text")]

    assert texts[0] == "Café Nord"
    assert "Points issued" in texts
    assert "Points redeemed" in texts
    assert day_labels == [str(day) for day in range(1, 32)] + ["Day of month"]


@pytest.mark.parametrize("days", [[], [(day, 0, 0) for day in OCTOBER]], ids=["empty", "zero"])
def test_svg_of_a_month_without_points_still_draws_axes_and_a_note(
    days: list[tuple[date, int, int]],
) -> None:
    root = ET.fromstring(daily_points_svg(days, title="Quiet month"))

    texts = [element.text for element in root.iter(f"{SVG}text")]
    assert "No points issued or redeemed this month" in texts
    assert len(list(root.iter(f"{SVG}line"))) >= 2  # the axes
    assert all(float(rect.get("height", "")) >= 0 for rect in root.iter(f"{SVG}rect"))


def test_svg_refuses_more_than_a_month_of_days() -> None:
    days = [(date(2026, 1, 1) + timedelta(days=offset), 1, 1) for offset in range(32)]

    with pytest.raises(ValueError, match="at most 31 days"):
        daily_points_svg(days, title="Too long")
