"""The landing page in a real browser: it leads to the API docs, switches language, and passes
axe-core with no serious or critical violation."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect


def test_a_visitor_reads_the_landing_page_and_switches_to_russian(
    page: Page, live_url: str, accessible: Callable[[Page], list[str]]
) -> None:
    page.goto(live_url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("One points currency, many shops")
    assert accessible(page) == []

    page.get_by_role("link", name="Русский").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Одна валюта баллов, много магазинов")
    expect(page.locator("html")).to_have_attribute("lang", "ru")

    page.get_by_role("link", name="Документация API").click()
    expect(page).to_have_url(live_url + "/api/v1/docs")
