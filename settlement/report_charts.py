"""Server-rendered SVG charts of the operator's monthly report (SPEC 3.9): each merchant's net
position as a bar around zero, and the issuer x redeemer flows as a heat map.

Built like `settlement.charts`: ElementTree, presentation attributes only (no CSS, no script, no
external reference), deterministic for the same input, so one string draws inline in the console
and as vector graphics in the report's PDF. Words come from the caller (`NetLabels`,
`FlowLabels`), so the page can translate them; the defaults are English for the PDF and tests.

Both charts are bounded (decision 157): the bar chart draws the `MAX_BARS` - 1
largest nets and one bar for the sum of the rest; the heat map draws the operator, the
`MAX_PARTIES` merchants that moved the most money, and one "others" row and column for the rest.
The report's tables list every merchant in full."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from settlement.charts import (
    AXIS_COLOR,
    FONT_FAMILY,
    GRID_COLOR,
    MUTED_COLOR,
    SVG_NAMESPACE,
    TEXT_COLOR,
)
from settlement.charts import _element as element
from settlement.charts import _line as line
from settlement.charts import _text as text

WIDTH = 720
MAX_BARS = 20
MAX_PARTIES = 20
MAX_LABEL = 22  # characters of a name drawn; the tables beside the charts show it whole
Y_TICKS = 4

PAYS_COLOR = "#c05621"  # a merchant that pays the operator (net > 0)
PAID_COLOR = "#2f855a"  # a merchant the operator pays (net < 0)
# The heat map's classes, lightest to darkest; the first is for a cell with nothing in it.
EMPTY_CELL = "#f7fafc"
SHADES = ("#dbeafe", "#93c5fd", "#3b82f6", "#1d4ed8", "#1e3a8a")
LIGHT_TEXT_FROM = 3  # shades from this index on carry white text


@dataclass(frozen=True)
class NetLabels:
    title: str = "Net position per merchant"
    pays: str = "Pays the operator"
    paid: str = "Paid by the operator"
    others: str = "Others ({n})"
    no_data: str = "No settled days this month"


@dataclass(frozen=True)
class FlowLabels:
    title: str = "Points of each issuer redeemed at each redeemer"
    issuer: str = "Issuer"
    redeemer: str = "Redeemer"
    others: str = "Others ({n})"
    scale: str = "Amount ({currency})"
    no_data: str = "No points travelled between shops this month"


@dataclass(frozen=True)
class Flow:
    """One cell of the month's matrix: parties by a key (a merchant's id, "operator") with names."""

    issuer: str
    redeemer: str
    points: int
    amount: Decimal


# Net positions ------------------------------------------------------------------------------------

BAR_HEIGHT = 18
BAR_GAP = 6
NET_TOP = 64
NET_LEFT = 200
NET_RIGHT = WIDTH - 24


def net_positions_svg(
    nets: Sequence[tuple[str, Decimal]], *, currency: str, labels: NetLabels = NetLabels()
) -> str:
    """Horizontal bars, one per `(merchant name, net)`, from the largest payer at the top to the
    operator's largest payee at the bottom (ties by name); positive nets right of zero, negative
    left. At most `MAX_BARS` bars: the smallest nets beyond them are summed into one."""
    bars = _bounded_nets(nets, labels.others)
    rows = max(len(bars), 1)
    plot_bottom = NET_TOP + rows * (BAR_HEIGHT + BAR_GAP)
    height = plot_bottom + 40
    root = _root(labels.title, height)
    root.append(element("rect", x=0, y=0, width=WIDTH, height=height, fill="#ffffff"))
    root.append(_title(labels.title))
    root.append(_legend(((PAYS_COLOR, labels.pays), (PAID_COLOR, labels.paid))))
    low, high, step = _money_scale([net for _, net in bars])

    def x_of(amount: Decimal) -> float:
        return NET_LEFT + float((amount - low) / (high - low)) * (NET_RIGHT - NET_LEFT)

    axis = element("g", **{"class": "axis x"})
    tick = low
    while tick <= high:
        x = x_of(tick)
        axis.append(line(x, NET_TOP - 4, x, plot_bottom, GRID_COLOR))
        label = text(_tick_text(tick, step), x=x, y=plot_bottom + 14, size=10, color=MUTED_COLOR)
        label.set("text-anchor", "middle")
        axis.append(label)
        tick += step
    caption = text(currency, x=NET_RIGHT, y=plot_bottom + 30, size=10, color=MUTED_COLOR)
    caption.set("text-anchor", "end")
    axis.append(caption)
    root.append(axis)
    group = element("g", **{"class": "bars"})
    for index, (name, net) in enumerate(bars):
        top = NET_TOP + index * (BAR_HEIGHT + BAR_GAP)
        left, right = sorted((x_of(Decimal(0)), x_of(net)))
        kind = "pays" if net > 0 else "paid" if net < 0 else "even"
        group.append(
            element(
                "rect",
                x=left,
                y=top,
                width=right - left,
                height=BAR_HEIGHT,
                fill=PAYS_COLOR if net > 0 else PAID_COLOR,
                **{"class": f"bar {kind}", "data-name": name, "data-net": str(net)},
            )
        )
        label = text(_short(name), x=NET_LEFT - 8, y=top + 13, size=11, color=TEXT_COLOR)
        label.set("text-anchor", "end")
        group.append(label)
    root.append(group)
    zero = x_of(Decimal(0))
    root.append(line(zero, NET_TOP - 4, zero, plot_bottom, AXIS_COLOR))
    if not bars:
        root.append(_note(labels.no_data, x=(NET_LEFT + NET_RIGHT) / 2, y=NET_TOP + 14))
    return ET.tostring(root, encoding="unicode")


def _bounded_nets(nets: Sequence[tuple[str, Decimal]], others: str) -> list[tuple[str, Decimal]]:
    ordered = sorted(nets, key=lambda item: (-abs(item[1]), item[0]))
    if len(ordered) > MAX_BARS:
        rest = ordered[MAX_BARS - 1 :]
        ordered = [
            *ordered[: MAX_BARS - 1],
            (others.format(n=len(rest)), sum((net for _, net in rest), Decimal(0))),
        ]
    return sorted(ordered, key=lambda item: (-item[1], item[0]))


def _money_scale(values: Sequence[Decimal]) -> tuple[Decimal, Decimal, Decimal]:
    """Round bounds around zero and every value, in about `Y_TICKS` steps of 1, 2 or 5 times a
    power of ten (exact decimals, so the tick labels are exact)."""
    low, high = min([Decimal(0), *values]), max([Decimal(0), *values])
    raw = (high - low) / Y_TICKS
    if raw == 0:
        return Decimal(0), Decimal(1), Decimal(1)
    exponent = raw.adjusted()
    step = next(
        Decimal(m).scaleb(exponent) for m in (1, 2, 5, 10) if Decimal(m).scaleb(exponent) >= raw
    )
    low_tick = (low / step).to_integral_value(rounding="ROUND_FLOOR") * step
    high_tick = (high / step).to_integral_value(rounding="ROUND_CEILING") * step
    return low_tick, max(high_tick, low_tick + step), step


def _tick_text(tick: Decimal, step: Decimal) -> str:
    places = max(-step.normalize().as_tuple().exponent, 0)  # type: ignore[operator]
    return f"{tick:,.{places}f}"


# Flow heat map ------------------------------------------------------------------------------------

HEAT_LEFT = 170
HEAT_TOP = 150  # room for the redeemers' names, drawn upright
HEAT_RIGHT = WIDTH - 24
MAX_CELL = 48


def flow_heatmap_svg(
    flows: Sequence[Flow],
    names: dict[str, str],
    *,
    currency: str,
    labels: FlowLabels = FlowLabels(),
) -> str:
    """A square matrix, issuers down the side and redeemers along the top, each cell shaded by
    the money its points are worth, in `len(SHADES)` equal classes up to the largest cell, with
    the classes' ranges as the legend. `names` maps each party's key to its name; the parties
    are the operator first, then merchants by money moved (in plus out, ties by name)."""
    parties, cells = _bounded_matrix(flows, names, labels.others)
    count = max(len(parties), 1)
    cell = min(MAX_CELL, (HEAT_RIGHT - HEAT_LEFT) / count)
    plot_bottom = HEAT_TOP + cell * count
    height = plot_bottom + 70
    root = _root(labels.title, height)
    root.append(element("rect", x=0, y=0, width=WIDTH, height=height, fill="#ffffff"))
    root.append(_title(labels.title))
    axes = element("g", **{"class": "axis"})
    corner = text(labels.issuer, x=HEAT_LEFT - 8, y=HEAT_TOP - 6, size=10, color=MUTED_COLOR)
    corner.set("text-anchor", "end")
    corner.set("font-weight", "bold")
    axes.append(corner)
    across = text(labels.redeemer, x=HEAT_LEFT, y=44, size=10, color=MUTED_COLOR)
    across.set("font-weight", "bold")
    axes.append(across)
    for index, (_, name) in enumerate(parties):
        row = text(
            _short(name),
            x=HEAT_LEFT - 8,
            y=HEAT_TOP + cell * index + cell / 2 + 4,
            size=10,
            color=TEXT_COLOR,
        )
        row.set("text-anchor", "end")
        row.set("class", "issuer")
        axes.append(row)
        x, y = HEAT_LEFT + cell * index + cell / 2 + 3, HEAT_TOP - 6
        slanted = element("g", transform=f"rotate(-90 {_num(x)} {_num(y)})")
        column = text(_short(name), x=x, y=y, size=10, color=TEXT_COLOR)
        column.set("class", "redeemer")
        slanted.append(column)
        axes.append(slanted)
    root.append(axes)
    top = max(cells.values(), key=lambda c: c[1], default=(0, Decimal(0)))[1]
    grid = element("g", **{"class": "cells"})
    for row_index, (issuer, _) in enumerate(parties):
        for column_index, (redeemer, _) in enumerate(parties):
            points, amount = cells.get((issuer, redeemer), (0, Decimal(0)))
            shade = _shade(amount, top)
            left, top_y = HEAT_LEFT + cell * column_index, HEAT_TOP + cell * row_index
            grid.append(
                element(
                    "rect",
                    x=left,
                    y=top_y,
                    width=cell,
                    height=cell,
                    fill=EMPTY_CELL if shade is None else SHADES[shade],
                    stroke="#ffffff",
                    **{
                        "stroke-width": "1",
                        "class": "cell",
                        "data-issuer": issuer,
                        "data-redeemer": redeemer,
                        "data-points": str(points),
                        "data-amount": str(amount),
                    },
                )
            )
            if points and cell >= 40:  # a number fits a big cell only
                value = text(
                    _compact(points),
                    x=left + cell / 2,
                    y=top_y + cell / 2 + 4,
                    size=9,
                    color="#ffffff" if (shade or 0) >= LIGHT_TEXT_FROM else TEXT_COLOR,
                )
                value.set("text-anchor", "middle")
                grid.append(value)
    root.append(grid)
    root.append(_scale_legend(top, currency, labels, y=plot_bottom + 24))
    if not cells:
        root.append(
            _note(labels.no_data, x=(HEAT_LEFT + HEAT_RIGHT) / 2, y=HEAT_TOP + cell / 2 + 4)
        )
    return ET.tostring(root, encoding="unicode")


OPERATOR_KEY = "operator"
OTHERS_KEY = "others"


def _bounded_matrix(
    flows: Sequence[Flow], names: dict[str, str], others: str
) -> tuple[list[tuple[str, str]], dict[tuple[str, str], tuple[int, Decimal]]]:
    moved: dict[str, Decimal] = defaultdict(Decimal)
    for flow in flows:
        moved[flow.issuer] += flow.amount
        moved[flow.redeemer] += flow.amount
    merchants = sorted(
        (key for key in moved if key != OPERATOR_KEY),
        key=lambda key: (-moved[key], names.get(key, key), key),
    )
    shown = merchants[:MAX_PARTIES]
    rest = merchants[MAX_PARTIES:]
    parties = [(key, names.get(key, key)) for key in shown]
    if OPERATOR_KEY in moved:
        parties.insert(0, (OPERATOR_KEY, names.get(OPERATOR_KEY, OPERATOR_KEY)))
    if rest:
        parties.append((OTHERS_KEY, others.format(n=len(rest))))
    folded = {key: OTHERS_KEY for key in rest}
    cells: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for flow in flows:
        pair = (folded.get(flow.issuer, flow.issuer), folded.get(flow.redeemer, flow.redeemer))
        points, amount = cells.get(pair, (0, Decimal(0)))
        cells[pair] = (points + flow.points, amount + flow.amount)
    return parties, {pair: value for pair, value in cells.items() if value[0] or value[1]}


def _shade(amount: Decimal, top: Decimal) -> int | None:
    """The class of `amount`: None for nothing, else 0..len(SHADES)-1 in equal steps to `top`."""
    if amount <= 0 or top <= 0:
        return None
    return min(int(amount * len(SHADES) / top - Decimal("1e-9")), len(SHADES) - 1)


def _scale_legend(top: Decimal, currency: str, labels: FlowLabels, *, y: float) -> ET.Element:
    group = element("g", **{"class": "legend scale"})
    group.append(
        text(labels.scale.format(currency=currency), x=HEAT_LEFT, y=y, size=10, color=MUTED_COLOR)
    )
    width = (HEAT_RIGHT - HEAT_LEFT) / len(SHADES)
    classes = len(SHADES)
    for index, color in enumerate(SHADES):
        x = HEAT_LEFT + index * width
        group.append(element("rect", x=x, y=y + 8, width=width, height=12, fill=color))
        low = top * index / classes
        high = top * (index + 1) / classes
        label = text(
            f"{_money_text(low)}\N{EN DASH}{_money_text(high)}",
            x=x + 2,
            y=y + 34,
            size=9,
            color=MUTED_COLOR,
        )
        group.append(label)
    return group


# Shared -------------------------------------------------------------------------------------------


def _root(title: str, height: float) -> ET.Element:
    return element(
        "svg",
        xmlns=SVG_NAMESPACE,
        version="1.1",
        width=WIDTH,
        height=height,
        viewBox=f"0 0 {WIDTH} {_num(height)}",
        role="img",
        **{"aria-label": title, "font-family": FONT_FAMILY},
    )


def _title(title: str) -> ET.Element:
    label = text(title, x=24, y=24, size=15, color=TEXT_COLOR)
    label.set("class", "title")
    label.set("font-weight", "bold")
    return label


def _legend(entries: Sequence[tuple[str, str]]) -> ET.Element:
    group = element("g", **{"class": "legend"})
    x = 24.0
    for color, label in entries:
        group.append(element("rect", x=x, y=36, width=12, height=12, fill=color))
        group.append(text(label, x=x + 18, y=46, size=12, color=MUTED_COLOR))
        x += 18 + 8 * len(label) + 24  # an estimated text width; no font metrics here
    return group


def _note(message: str, *, x: float, y: float) -> ET.Element:
    note = text(message, x=x, y=y, size=12, color=MUTED_COLOR)
    note.set("text-anchor", "middle")
    note.set("class", "no-data")
    return note


def _short(name: str) -> str:
    return name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1] + "…"


def _compact(points: int) -> str:
    if points >= 1_000_000:
        return f"{points // 1_000_000}.{points // 100_000 % 10}M"
    if points >= 10_000:
        return f"{points // 1000}k"
    return str(points)


def _money_text(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01')):,}"


def _num(value: float) -> str:
    rounded = round(value, 2) + 0.0
    return f"{rounded:.2f}".rstrip("0").rstrip(".")
