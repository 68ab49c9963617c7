"""The catalogue's pages (SPEC 3.9), without a browser: a member browses, orders with the
button and cancels in `/me`; a merchant lists a reward with its image, fulfils an order and
accepts a voucher in `/portal`; the operator lists its own in `/ops` and hands them over. A
rewards' image is sniffed, bounded and served back; anything else is refused, nothing kept."""

from __future__ import annotations

import re
import struct
import zlib

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition import tenancy
from coalition.audit import events_table
from rewards import images, services
from rewards.models import orders, reward_images, rewards
from tests import factories as f
from tests.coalition.test_me_pages import _registered, _sign_in, _text
from tests.merchants.test_portal_pages import _merchant
from tests.merchants.test_portal_pages import _sign_in as _portal_sign_in
from tests.ops_helpers import csrf_token, sign_in_as
from tests.rewards.helpers import reward


def png(width: int = 4, height: int = 3) -> bytes:
    """A real, tiny PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    return (
        images.PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_a_member_orders_with_the_button_and_cancels_in_me(client: FlaskClient, session: Session):
    shop = f.merchant(session, "Cafe")
    cup = reward(session, shop, name="Espresso cup", points=300)
    reward(session, shop, name="Teapot", category="tea", points=900)
    member = _registered(session, "dora@example.org")
    f.purchase(session, member, shop, 500)
    _sign_in(client, "dora@example.org")

    page = client.get("/me/rewards?category=kitchen")
    assert page.status_code == 200
    text = _text(page.get_data(as_text=True))
    assert "Espresso cup" in text and "Teapot" not in text
    ordered = client.post(
        f"/me/rewards/{cup}/order",
        data={"quantity": "1", "csrf_token": _csrf(page.get_data(as_text=True))},
    )
    assert ordered.status_code == 303 and ordered.headers["Location"] == "/me/orders"
    mine = client.get("/me/orders").get_data(as_text=True)
    assert "Ordered: Espresso cup." in _text(mine)
    [order_id] = session.execute(select(orders.c.public_id)).scalars()
    assert f"/me/orders/{order_id}/cancel" in mine

    cancelled = client.post(f"/me/orders/{order_id}/cancel", data={"csrf_token": _csrf(mine)})
    assert cancelled.status_code == 303
    after = _text(client.get("/me/orders").get_data(as_text=True))
    assert "300 points are back in your balance" in after
    assert session.execute(select(orders.c.status)).scalar_one() == "cancelled"


def test_a_member_who_cannot_afford_it_is_told_so_and_nothing_is_ordered(client, session):
    shop = f.merchant(session)
    dear = reward(session, shop, points=9000, stock=1)
    member = _registered(session, "eve@example.org")
    f.purchase(session, member, shop, 10)
    _sign_in(client, "eve@example.org")
    page = client.get("/me/rewards").get_data(as_text=True)

    refused = client.post(
        f"/me/rewards/{dear}/order", data={"quantity": "1", "csrf_token": _csrf(page)}
    )

    assert refused.status_code == 303
    assert "You do not have enough points" in _text(
        client.get("/me/rewards").get_data(as_text=True)
    )
    assert session.execute(select(orders.c.id)).all() == []
    assert session.execute(select(rewards.c.stock)).scalar_one() == 1


def test_a_merchant_lists_a_reward_with_an_image_fulfils_and_accepts_a_voucher_in_the_portal(
    client: FlaskClient, session: Session
):
    shop = _merchant(session, "shop@example.org", "Apotheke")
    _portal_sign_in(client, "shop@example.org")
    form = client.get("/portal/rewards").get_data(as_text=True)
    listed = client.post(
        "/portal/rewards",
        data={
            "csrf_token": _csrf(form),
            "name": "Hand cream",
            "kind": "gift",
            "points": "250",
            "stock": "10",
            "cost_price": "3.20",
            "fulfilment_days": "7",
            "category": "Care",
            "description": "50 ml",
            "image": (__import__("io").BytesIO(png()), "cream.png"),
        },
        content_type="multipart/form-data",
    )
    assert listed.status_code == 303, listed.get_data(as_text=True)
    row = session.execute(select(rewards)).one()
    assert (row.name, row.points, row.stock, row.cost_price_minor, row.category) == (
        "Hand cream",
        250,
        10,
        320,
        "care",
    )
    served = client.get(f"/rewards/{row.public_id}/image")
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.data == png()

    # The portal's request left the test's transaction as the merchant's tenant.
    with tenancy.acting_as(tenancy.SYSTEM, session):
        member, voucher_id = f.member(session), reward(session, shop, kind="voucher", points=100)
        f.purchase(session, member, shop, 1000)
    gift = services.place_order(
        session, member_id=member, reward_id=row.public_id, quantity=1, now=f.T0
    )
    voucher = services.place_order(
        session, member_id=member, reward_id=voucher_id, quantity=1, now=f.T0
    )
    page = client.get("/portal/orders").get_data(as_text=True)
    assert gift.id in page and voucher.id in page
    assert voucher.voucher_code not in page  # the member brings it

    fulfilled = client.post(f"/portal/orders/{gift.id}/fulfil", data={"csrf_token": _csrf(page)})
    assert fulfilled.status_code == 303
    accepted = client.post(
        "/portal/vouchers", data={"csrf_token": _csrf(page), "code": voucher.voucher_code}
    )
    assert accepted.status_code == 303
    again = client.post(
        "/portal/vouchers", data={"csrf_token": _csrf(page), "code": voucher.voucher_code}
    )
    assert again.status_code == 409
    assert "This voucher was accepted before." in _text(again.get_data(as_text=True))
    assert set(session.execute(select(orders.c.status)).scalars()) == {"fulfilled"}


def test_images_that_are_not_png_jpeg_or_webp_or_too_big_are_refused(client, session, monkeypatch):
    # A small limit, so that the test's upload stays in memory; the check is the same.
    monkeypatch.setattr(images, "MAX_BYTES", 4096)
    shop = _merchant(session, "pics@example.org")
    cup = reward(session, shop)
    _portal_sign_in(client, "pics@example.org")
    page = client.get(f"/portal/rewards/{cup}").get_data(as_text=True)
    fields = {
        "name": "Cup",
        "kind": "gift",
        "points": "300",
        "fulfilment_days": "14",
        "category": "kitchen",
    }
    for name, data in [
        ("fake.png", b"<svg xmlns='http://www.w3.org/2000/svg'></svg>"),
        ("huge.png", png() + b"\x00" * images.MAX_BYTES),
        ("wide.png", png(width=images.MAX_SIDE + 1)),
        ("cut.png", png()[:20]),
    ]:
        answer = client.post(
            f"/portal/rewards/{cup}",
            data={
                "csrf_token": _csrf(page),
                **fields,
                "image": (__import__("io").BytesIO(data), name),
            },
            content_type="multipart/form-data",
        )
        assert answer.status_code == 422, name
    assert session.execute(select(reward_images.c.reward_id)).all() == []
    assert client.get(f"/rewards/{cup}/image").status_code == 404


def test_jpeg_and_webp_headers_are_read_for_their_size():
    jpeg = (
        b"\xff\xd8\xff\xe0"
        + struct.pack(">H", 16)
        + b"JFIF\x00"
        + b"\x00" * 9
        + b"\xff\xc0"
        + struct.pack(">HBHH", 17, 8, 480, 640)
        + b"\x03"
        + b"\x00" * 9
    )
    assert images.check(jpeg).content_type == "image/jpeg"
    assert (images.check(jpeg).width, images.check(jpeg).height) == (640, 480)
    lossless = b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8L" + struct.pack("<I", 10) + b"\x2f"
    lossless += ((99) | (49 << 14)).to_bytes(4, "little") + b"\x00" * 10
    assert (images.check(lossless).width, images.check(lossless).height) == (100, 50)


def test_the_operator_lists_its_own_reward_and_hands_it_over_in_ops(client, session):
    sign_in_as(client, session, "admin")
    token = csrf_token(client, "/ops/rewards")
    listed = client.post(
        "/ops/rewards",
        data={
            "csrf_token": token,
            "name": "Balloon ride",
            "kind": "experience",
            "points": "5000",
            "fulfilment_days": "30",
            "category": "Outdoors",
        },
    )
    assert listed.status_code == 303, listed.get_data(as_text=True)
    ride = session.execute(select(rewards.c.public_id, rewards.c.merchant_id)).one()
    assert ride.merchant_id is None
    assert session.execute(select(events_table.c.action)).scalars().all() == ["reward.created"]

    with tenancy.acting_as(tenancy.SYSTEM, session):
        shop = f.merchant(session)
        member = f.member(session)
        f.purchase(session, member, shop, 6000)
    order = services.place_order(
        session, member_id=member, reward_id=ride.public_id, quantity=1, now=f.T0
    )
    page = client.get("/ops/rewards/orders")
    assert page.status_code == 200 and order.id in page.get_data(as_text=True)
    done = client.post(f"/ops/rewards/orders/{order.id}/fulfil", data={"csrf_token": token})
    assert done.status_code == 303
    assert session.execute(select(orders.c.status)).scalar_one() == "fulfilled"


def test_a_support_staff_sees_the_catalogue_but_cannot_list(client, session):
    sign_in_as(client, session, "support")
    assert client.get("/ops/rewards").status_code == 200
    token = csrf_token(client, "/ops/rewards/orders")
    refused = client.post("/ops/rewards", data={"csrf_token": token, "name": "x"})
    assert refused.status_code == 403


def test_an_order_form_sent_twice_orders_once(client: FlaskClient, session: Session):
    shop = f.merchant(session, "Cafe")
    cup = reward(session, shop, name="Espresso cup", points=100)
    member = _registered(session, "twice@example.org")
    f.purchase(session, member, shop, 500)
    _sign_in(client, "twice@example.org")
    page = client.get("/me/rewards").get_data(as_text=True)
    request_id = re.search(r'name="request_id" type="hidden" value="([^"]+)"', page)
    assert request_id is not None
    form = {"quantity": "1", "csrf_token": _csrf(page), "request_id": request_id.group(1)}

    first = client.post(f"/me/rewards/{cup}/order", data=form)
    second = client.post(f"/me/rewards/{cup}/order", data=form)

    assert first.status_code == second.status_code == 303
    assert len(session.execute(select(orders.c.id)).all()) == 1
    assert "Ordered: Espresso cup." in _text(client.get("/me/orders").get_data(as_text=True))


def test_a_merchant_cannot_open_change_or_fulfil_another_merchants_in_the_portal(
    client: FlaskClient, session: Session
):
    _merchant(session, "mine@example.org", "Mine")
    other = f.merchant(session, "Other")
    theirs = reward(session, other, name="Their cup")
    member = f.member(session)
    f.purchase(session, member, other, 500)
    order = services.place_order(session, member_id=member, reward_id=theirs, quantity=1, now=f.T0)
    _portal_sign_in(client, "mine@example.org")
    page = client.get("/portal/orders").get_data(as_text=True)
    assert order.id not in page

    assert client.get(f"/portal/rewards/{theirs}").status_code == 404
    changed = client.post(
        f"/portal/rewards/{theirs}",
        data={
            "csrf_token": _csrf(page),
            "name": "Mine now",
            "kind": "gift",
            "points": "1",
            "fulfilment_days": "1",
            "category": "x",
        },
    )
    assert changed.status_code == 404
    fulfilled = client.post(f"/portal/orders/{order.id}/fulfil", data={"csrf_token": _csrf(page)})
    assert fulfilled.status_code == 404
    with tenancy.acting_as(tenancy.SYSTEM, session):
        assert session.execute(select(orders.c.status)).scalar_one() == "pending"
        assert session.execute(select(rewards.c.name)).scalar_one() == "Their cup"
