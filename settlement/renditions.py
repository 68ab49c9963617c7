"""Renditions of a merchant's monthly settlement statement for people: CSV for spreadsheets and an
A4 PDF with a chart of the month's points.

Both work from the statement's plain mapping (as the statement API serialises it), so they need no
database. Both show every amount in major units (exact lines as given, rounded money converted
from minor units, `settlement.money`) and never as a float, and both say in words who pays whom. The
PDF draws the chart from `settlement.charts` as vector graphics. It writes text in DejaVu Sans when
that font is installed, because merchant names may be in any script; without it, it uses a core
PDF font and replaces the characters that font cannot show.
"""

from __future__ import annotations

import calendar
import csv
import io
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.fonts import FontFace

from settlement.charts import HEIGHT as CHART_HEIGHT
from settlement.charts import WIDTH as CHART_WIDTH
from settlement.charts import daily_points_svg
from settlement.money import major, who_pays

Statement = Mapping[str, Any]

# Where Debian/Ubuntu, Fedora, Alpine and Arch install DejaVu Sans, the first that exists wins.
DEJAVU_SANS_PATHS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
)
UNICODE_FAMILY = "DejaVu Sans"  # the family name the chart's SVG asks for first
CORE_FAMILY = "helvetica"

# Spreadsheets run a cell that starts with one of these as a formula (CSV injection). Amounts are
# checked to be decimals instead, so they keep their sign.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

# Punctuation outside Latin-1 that names and descriptions commonly contain, for the core font.
LATIN1_PUNCTUATION = {
    "\u2013": "-",
    "\u2014": "-",
    "\u2212": "-",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2026": "...",
    "\u20ac": "EUR",
}

LINE_COLUMNS = ("kind", "description", "amount")
MUTED_RGB = (74, 85, 104)
TEXT_RGB = (26, 32, 44)
BODY_SIZE = 10


def statement_csv(statement: Statement) -> str:
    """The statement as RFC 4180 CSV (CRLF line ends), in three blocks separated by an empty row.

    First a `field,value` header ending with the `summary` in words, then the lines and the
    rounding line as `kind,description,amount`, then the `opening`, `net` and `closing` totals,
    all in major units."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(_header_rows(statement))
    writer.writerow([])
    writer.writerow(LINE_COLUMNS)
    writer.writerows(_line_rows(statement))
    writer.writerow(["rounding", "Rounding", _amount(statement["rounding"])])
    writer.writerow([])
    writer.writerows(_total_rows(statement))
    return buffer.getvalue()


def _header_rows(statement: Statement) -> list[list[str]]:
    merchant = statement["merchant"]
    fields = (
        ("statement", statement["id"]),
        ("merchant_id", merchant["id"]),
        ("merchant_name", merchant["name"]),
        ("month", statement["month"]),
        ("currency", statement["currency"]),
        ("status", statement.get("status") or ""),
        ("issued_at", statement.get("issued_at") or ""),
        ("summary", _in_words(statement)),
    )
    return [[name, _safe_text(str(value))] for name, value in fields]


def _in_words(statement: Statement) -> str:
    return who_pays(statement["merchant"]["name"], statement["closing"])


def _line_rows(statement: Statement) -> list[list[str]]:
    return [
        [_safe_text(line["kind"]), _safe_text(line["description"]), _amount(line["amount"])]
        for line in statement["lines"]
    ]


def _total_rows(statement: Statement) -> list[list[str]]:
    return [[name, major(statement[name])] for name in ("opening", "net", "closing")]


def _safe_text(text: str) -> str:
    """Text that a spreadsheet shows as text: a leading quote stops it from running a formula."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _amount(amount: object) -> str:
    """The amount exactly as given, after checking that it is a finite decimal string."""
    if not isinstance(amount, str):
        raise TypeError(f"amounts are decimal strings, got {type(amount).__name__}: {amount!r}")
    try:
        finite = Decimal(amount).is_finite()
    except InvalidOperation:
        finite = False
    if not finite:
        raise ValueError(f"not a decimal amount: {amount!r}")
    return amount


@dataclass(frozen=True)
class Typeface:
    """The font family the PDF writes in, and how text is made safe for it."""

    family: str
    clean: Callable[[str], str]


class StatementDocument(FPDF):
    """An A4 page with the statement id and page number in its footer."""

    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.footer_text = footer_text
        self.typeface = Typeface(CORE_FAMILY, _latin1)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.typeface.family, "", 8)
        self.set_text_color(*MUTED_RGB)
        self.cell(0, 5, f"{self.footer_text} · page {self.page_no()}/{{nb}}", align="C")


def statement_pdf(statement: Statement, *, font_paths: Sequence[Path] = DEJAVU_SANS_PATHS) -> bytes:
    """The statement as an A4 PDF: heading, lines, totals, and the daily points chart.

    The output is the same bytes for the same statement: the creation date is the statement's
    issue time. `font_paths` lists where to look for DejaVu Sans; with none found the core
    Helvetica font is used and characters outside Latin-1 are replaced."""
    pdf = StatementDocument(footer_text=f"Settlement statement {statement['id']}")
    pdf.typeface = _load_typeface(pdf, font_paths)
    _set_metadata(pdf, statement)
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    _heading(pdf, statement)
    _lines_table(pdf, statement)
    _totals_table(pdf, statement)
    _chart(pdf, statement)
    return bytes(pdf.output())


def _load_typeface(pdf: FPDF, font_paths: Sequence[Path]) -> Typeface:
    regular = next((path for path in font_paths if path.is_file()), None)
    if regular is None:
        return Typeface(CORE_FAMILY, _latin1)
    bold = regular.with_name(regular.stem + "-Bold" + regular.suffix)
    pdf.add_font(UNICODE_FAMILY, "", str(regular))
    pdf.add_font(UNICODE_FAMILY, "B", str(bold if bold.is_file() else regular))
    return Typeface(UNICODE_FAMILY, str)


def _latin1(text: str) -> str:
    """Text a core PDF font can show: accents dropped where that helps (ź → z), else `?`."""
    return "".join(_latin1_char(char) for char in text)


def _latin1_char(char: str) -> str:
    if ord(char) < 256:
        return char
    if char in LATIN1_PUNCTUATION:
        return LATIN1_PUNCTUATION[char]
    base = unicodedata.normalize("NFKD", char).encode("latin-1", "ignore").decode("latin-1")
    return base or "?"


def _set_metadata(pdf: FPDF, statement: Statement) -> None:
    merchant = statement["merchant"]
    pdf.set_title(f"Settlement statement {statement['month']} for {merchant['name']}")
    pdf.set_subject(f"Statement {statement['id']} for merchant {merchant['id']}")
    pdf.set_author("Coalition")
    pdf.set_creator("Coalition")
    pdf.set_lang("en")
    pdf.set_creation_date(_creation_date(statement))


def _creation_date(statement: Statement) -> datetime:
    """When the statement was issued; a draft has no issue time, so the month's first day."""
    issued_at = statement.get("issued_at")
    if issued_at:
        return datetime.fromisoformat(issued_at)
    year, month = _year_month(statement["month"])
    return datetime(year, month, 1, tzinfo=UTC)


def _year_month(month: str) -> tuple[int, int]:
    year, number = month.split("-")
    return int(year), int(number)


def _heading(pdf: StatementDocument, statement: Statement) -> None:
    clean = pdf.typeface.clean
    merchant = statement["merchant"]
    year, month = _year_month(statement["month"])
    pdf.set_text_color(*TEXT_RGB)
    pdf.set_font(pdf.typeface.family, "B", 18)
    pdf.cell(0, 10, "Settlement statement", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.typeface.family, "B", 13)
    pdf.cell(0, 8, clean(merchant["name"]), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    fields = (
        ("Merchant", merchant["id"]),
        ("Month", f"{calendar.month_name[month]} {year} ({statement['month']})"),
        ("Statement", statement["id"]),
        ("Status", statement.get("status") or ""),
        ("Issued at", _issued_at(statement.get("issued_at"))),
        ("Currency", statement["currency"]),
    )
    _key_values(pdf, [(label, clean(str(value))) for label, value in fields])
    pdf.ln(3)
    pdf.set_font(pdf.typeface.family, "B", 12)
    pdf.multi_cell(0, 6, clean(_in_words(statement)), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _issued_at(issued_at: str | None) -> str:
    if not issued_at:
        return "not issued"
    return datetime.fromisoformat(issued_at).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _key_values(pdf: StatementDocument, rows: Iterable[tuple[str, str]]) -> None:
    pdf.set_font(pdf.typeface.family, "", BODY_SIZE)
    with pdf.table(
        col_widths=(1, 4),
        width=pdf.epw * 0.7,
        align="LEFT",
        borders_layout="NONE",
        first_row_as_headings=False,
        line_height=5,
        padding=(0, 1),
        text_align="LEFT",
    ) as table:
        for label, value in rows:
            row = table.row()
            row.cell(label, style=FontFace(color=MUTED_RGB))
            row.cell(value)


def _lines_table(pdf: StatementDocument, statement: Statement) -> None:
    clean = pdf.typeface.clean
    pdf.set_font(pdf.typeface.family, "", BODY_SIZE)
    with pdf.table(
        col_widths=(2, 5, 2),
        borders_layout="HORIZONTAL_LINES",
        line_height=5,
        padding=(1, 1),
        text_align="LEFT",
        headings_style=FontFace(emphasis="BOLD", fill_color=(237, 242, 247)),
        cell_fill_mode="NONE",
    ) as table:
        heading = table.row()
        heading.cell("Kind")
        heading.cell("Description")
        heading.cell(f"Amount ({statement['currency']})", align="RIGHT")
        for line in statement["lines"]:
            row = table.row()
            row.cell(clean(_humanise(line["kind"])))
            row.cell(clean(line["description"]))
            row.cell(_amount(line["amount"]), align="RIGHT")
        if not statement["lines"]:
            table.row().cell("No lines this month", colspan=3, style=FontFace(color=MUTED_RGB))
    pdf.ln(3)


def _totals_table(pdf: StatementDocument, statement: Statement) -> None:
    currency = statement["currency"]
    totals = (
        ("Rounding", _amount(statement["rounding"]), False),
        ("Net for the month", major(statement["net"]), False),
        ("Opening balance", major(statement["opening"]), False),
        ("Closing balance", major(statement["closing"]), True),
    )
    pdf.set_font(pdf.typeface.family, "", BODY_SIZE)
    with pdf.table(
        col_widths=(3, 2),
        width=pdf.epw * 0.5,
        align="RIGHT",
        borders_layout="SINGLE_TOP_LINE",
        first_row_as_headings=False,
        line_height=5,
        padding=(1, 1),
        text_align="RIGHT",
    ) as table:
        for label, amount, emphasised in totals:
            style = FontFace(emphasis="BOLD") if emphasised else None
            row = table.row(style=style)
            row.cell(label, align="LEFT")
            row.cell(f"{amount} {currency}")
    _carried(pdf, statement)
    pdf.ln(6)


def _carried(pdf: StatementDocument, statement: Statement) -> None:
    """Why there is an opening balance: the earlier statements whose payout failed."""
    carried = statement.get("carried") or ()
    if not carried:
        return
    pdf.ln(2)
    pdf.set_font(pdf.typeface.family, "", BODY_SIZE)
    pdf.set_text_color(*MUTED_RGB)
    for earlier in carried:
        note = (
            f"Carried from {earlier['statement']} ({earlier['month']}), whose payout failed:"
            f" {major(earlier['amount'])} {earlier['amount']['currency']}"
        )
        pdf.multi_cell(0, 5, pdf.typeface.clean(note), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*TEXT_RGB)


def _chart(pdf: StatementDocument, statement: Statement) -> None:
    """The daily points chart, drawn from SVG as vector paths and text, across the page."""
    title = pdf.typeface.clean(f"Points issued and redeemed per day, {statement['month']}")
    svg = daily_points_svg(_chart_days(statement), title=title)
    height = pdf.epw * CHART_HEIGHT / CHART_WIDTH
    if pdf.will_page_break(height):
        pdf.add_page()
    pdf.image(io.BytesIO(svg.encode("utf-8")), x=pdf.l_margin, y=pdf.y, w=pdf.epw, h=height)
    pdf.set_y(pdf.y + height)


def _chart_days(statement: Statement) -> list[tuple[date, int, int]]:
    return [
        (date.fromisoformat(day["date"]), int(day["issued"]), int(day["redeemed"]))
        for day in statement.get("days", ())
    ]


def _humanise(kind: str) -> str:
    return kind.replace("_", " ").capitalize()
