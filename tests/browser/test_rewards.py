"""The rewards catalogue in a real browser: a member browses the rewards in `/me`, orders one
with its button, sees it among its orders and cancels it, the points back; a merchant lists a
reward in `/portal`, then fulfils a member's order of it and accepts a voucher at its till.
Each page passes axe-core."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from coalition import clock
from coalition.extensions import db
from coalition.members import credentials
from merchants import services as merchant_services
from rewards import services
from rewards.models import rewards
from tests import factories as f
from tests.rewards.helpers import reward
from tests.rewards.test_pages import png

EMAIL = "rosa@example.org"
SHOP_EMAIL = "shop@apotheke.example"
PASSWORD = "a long enough password"


def _member_with_points(app: Flask, shop: int, points: int) -> int:
    with app.app_context():
        session = db.session()
        member = credentials.join(
            session, now=f.T0, card_prefix="9999", email=EMAIL, password=PASSWORD, name="Rosa"
        ).id
        f.purchase(session, member, shop, points)
        session.commit()
    return member


def _shop(app: Flask) -> int:
    """An approved merchant that signs in to the portal."""
    with app.app_context():
        session = db.session()
        standing = merchant_services.apply(
            session,
            name="Apotheke",
            email=SHOP_EMAIL,
            country="DE",
            category="pharmacy",
            website=None,
            contact_name="Anna",
            password_hash=generate_password_hash(PASSWORD),
            now=clock.utcnow(),
        )
        merchant_services.approve_merchant(session, standing.id, clock.utcnow())
        merchants = merchant_services.Merchant.__table__
        shop = session.execute(
            select(merchants.c.id).where(merchants.c.public_id == standing.id)
        ).scalar_one()
        session.commit()
    return int(shop)


def test_a_member_orders_a_reward_with_its_button_and_cancels_the_order(
    page: Page, live_app: Flask, live_url: str, accessible: Callable[[Page], list[str]]
) -> None:
    with live_app.app_context():
        session = db.session()
        shop = f.merchant(session, "Apotheke")
        cream = reward(session, shop, name="Hand cream", points=300, stock=2, category="care")
        services.set_image(session, shop, cream, png(8, 6), f.T0)
        reward(session, shop, name="Sun hat", points=5000, category="summer")
        session.commit()
    _member_with_points(live_app, shop, 500)

    page.goto(live_url + "/me/")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Rewards").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rewards")
    expect(page.get_by_role("img", name="Hand cream")).to_be_visible()
    assert accessible(page) == []

    page.get_by_label("Category").select_option("care")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", name="Sun hat")).to_have_count(0)
    page.get_by_role("button", name="Order Hand cream").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("My orders")
    expect(page.get_by_role("status")).to_have_text("Ordered: Hand cream.")
    orders = page.get_by_role("table", name="My orders")
    expect(orders).to_contain_text("Hand cream")
    expect(orders).to_contain_text("300")
    assert accessible(page) == []
    with live_app.app_context():
        stock = select(rewards.c.stock).order_by(rewards.c.id)
        assert db.session.execute(stock).scalars().all() == [1, None]

    page.get_by_role("button", name="Cancel the order of Hand cream").click()
    expect(page.get_by_role("status")).to_contain_text("300 points are back in your balance")
    expect(orders).to_contain_text("Cancelled, points returned")
    page.get_by_role("link", name="Balance").click()
    expect(page.locator("main")).to_contain_text("500")


def test_a_merchant_lists_a_reward_fulfils_an_order_and_accepts_a_voucher(
    page: Page, live_app: Flask, live_url: str, accessible: Callable[[Page], list[str]], tmp_path
) -> None:
    shop = _shop(live_app)
    page.goto(live_url + "/portal/sign-in")
    page.get_by_label("Email").fill(SHOP_EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Rewards", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rewards")
    assert accessible(page) == []

    image = tmp_path / "cream.png"
    image.write_bytes(png())
    page.get_by_label("Name").fill("Hand cream")
    page.get_by_label("Kind").select_option("gift")
    page.get_by_label("Price in points").fill("250")
    page.get_by_label("Stock (leave empty for unlimited)").fill("10")
    page.get_by_label("Cost price (optional)").fill("3.20")
    page.get_by_label("Days to fulfil an order").fill("7")
    page.get_by_label("Category").fill("care")
    page.get_by_label("Image (PNG, JPEG or WebP, at most 2 MB)").set_input_files(str(image))
    page.get_by_role("button", name="List it").click()
    expect(page.get_by_role("status")).to_have_text("Listed: Hand cream.")
    listing = page.get_by_role("table", name="Rewards")
    expect(listing).to_contain_text("Hand cream")
    expect(listing).to_contain_text("€3.20")

    with live_app.app_context():
        session = db.session()
        cream = session.execute(select(rewards.c.public_id)).scalar_one()
        member = f.member(session)
        f.purchase(session, member, shop, 1000)
        gift = services.place_order(
            session, member_id=member, reward_id=cream, quantity=1, now=clock.utcnow()
        )
        voucher_reward = reward(session, shop, kind="voucher", name="5 EUR off", points=100)
        voucher = services.place_order(
            session, member_id=member, reward_id=voucher_reward, quantity=1, now=clock.utcnow()
        )
        session.commit()

    page.get_by_role("link", name="Orders", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Orders of your rewards")
    assert accessible(page) == []
    page.get_by_role("button", name=f"Mark the order {gift.id} fulfilled").click()
    expect(page.get_by_role("status")).to_have_text("Order of Hand cream marked fulfilled.")

    page.get_by_label("Voucher code").fill(str(voucher.voucher_code).lower())
    page.get_by_role("button", name="Accept").click()
    expect(page.get_by_role("status")).to_have_text("Voucher accepted: 5 EUR off.")
    page.get_by_label("Voucher code").fill(str(voucher.voucher_code))
    page.get_by_role("button", name="Accept").click()
    expect(page.get_by_text("This voucher was accepted before.")).to_be_visible()
    assert accessible(page) == []
    page.get_by_role("link", name="Fulfilled", exact=True).click()
    table = page.get_by_role("table", name="Orders of your rewards")
    expect(table).to_contain_text("Voucher accepted")
    expect(table).to_contain_text(gift.id)
