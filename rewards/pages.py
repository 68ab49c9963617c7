"""What the supplier's pages in `/portal` and `/ops` share: the orders of its rewards, a page at
a time, by state, with the form that accepts a voucher."""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from coalition.extensions import db
from coalition.web import pages
from rewards import reads
from rewards.forms import ButtonForm, VoucherForm

STATUSES = ("pending", "fulfilled", "cancelled")


def orders_page(
    template: str, supplier: reads.Supplier, voucher_form: VoucherForm, status: int = 200
) -> tuple[str, int]:
    """`template` listing the orders of `supplier`'s rewards (a merchant's id, or None: the
    operator's) in the state the query asks for, pending by default."""
    wanted = request.args.get("status", "pending")
    number = pages.page_number()
    rows, has_next = reads.page(
        db.session(),
        reads.supplier_orders(supplier, wanted if wanted in STATUSES else None),
        reads.ORDER_ID,
        number,
        pages.PAGE_SIZE,
    )
    shown: dict[str, Any] = {
        "orders": [reads.order_view(row) for row in rows],
        "status": wanted if wanted in STATUSES else "",
        "number": number,
        "has_next": has_next,
        "form": ButtonForm(),
        "voucher_form": voucher_form,
    }
    return render_template(template, **shown), status
