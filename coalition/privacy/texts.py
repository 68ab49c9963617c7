"""The consent texts a member is shown, one per purpose, each with its version. A record of
consent names the version the member saw; a changed text gets a new version (and the old one
stays here, so every record can still be read back), never an edit in place."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString


@dataclass(frozen=True)
class ConsentText:
    purpose: str
    version: str
    text: LazyString


TEXTS = {
    text.purpose: text
    for text in (
        ConsentText(
            "email",
            "email-2026-11",
            _l("Partners where I shop may send me offers and news by email."),
        ),
        ConsentText(
            "sms",
            "sms-2026-11",
            _l("Partners where I shop may send me offers and news by text message (SMS)."),
        ),
        ConsentText(
            "post",
            "post-2026-11",
            _l("Partners where I shop may send me offers and news by post."),
        ),
        ConsentText(
            "sharing",
            "sharing-2026-11",
            _l(
                "The coalition may share my name and the contact details above with the partners"
                " where I have shopped, so that they can send me their offers themselves. Without"
                " this, no partner sees my contact details."
            ),
        ),
        ConsentText(
            "profiling",
            "profiling-2026-12",
            _l(
                "The coalition and its partners may use what I tell about myself (birth date,"
                " household, interests, region) and where and how much I shop to choose the offers"
                " I get. Without this, I get only the offers everyone gets."
            ),
        ),
    )
}
