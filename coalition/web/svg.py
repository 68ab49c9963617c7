"""The few primitives every server-side SVG chart draws with (SPEC 3.9: the same picture serves
the page and the PDF): the namespace, the font, a text element and attribute values written
with at most two decimals, so that the same input gives the same bytes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

SVG_NAMESPACE: Final = "http://www.w3.org/2000/svg"
FONT_FAMILY: Final = "DejaVu Sans, Helvetica, Arial, sans-serif"


def text(
    parent: ET.Element,
    content: str,
    *,
    x: float,
    y: float,
    size: int,
    color: str,
    anchor: str = "start",
) -> None:
    """A line of text at (x, y), `anchor` its horizontal alignment."""
    element = ET.SubElement(
        parent,
        "text",
        attrs(x=x, y=y, fill=color, **{"font-size": str(size), "text-anchor": anchor}),
    )
    element.text = content


def attrs(**values: str | float) -> dict[str, str]:
    """Attribute values as SVG wants them: strings as given, numbers by `number`."""
    return {key: number(value) for key, value in values.items()}


def number(value: str | float) -> str:
    """A coordinate with at most two decimals and no trailing zeros (`12`, `12.5`, `-0` as `0`)."""
    if isinstance(value, str):
        return value
    return f"{round(value, 2) + 0.0:.2f}".rstrip("0").rstrip(".")
