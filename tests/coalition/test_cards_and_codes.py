"""Cards and proof of presence (SPEC 2, QUALITY F1): a mistyped card number is caught, a card of
another coalition is refused, and a rotating code works once inside its 30-second step; five
wrong codes in 15 minutes lock redemption for 15 minutes. Time is injected, never waited for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from coalition.database import table
from coalition.errors import InvalidRequest, NotFound
from coalition.members import cards, codes, services
from coalition.members.models import Member
from tests import factories as f

members = table(Member)
NOW = datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC)  # 5 seconds into a 30-second step
STEP = timedelta(seconds=codes.STEP_SECONDS)

card_bodies = st.text(alphabet="0123456789", min_size=11, max_size=11)


def _card(body: str, prefix: str = cards.DEFAULT_PREFIX) -> str:
    return prefix + body + cards.luhn_check_digit(prefix + body)


# Card numbers


@given(card_bodies)
def test_every_single_digit_typo_is_caught(body: str) -> None:
    number = _card(body)
    assert cards.is_valid(number)
    for position in range(cards.CARD_LENGTH):
        for digit in "0123456789":
            if digit != number[position]:
                typo = number[:position] + digit + number[position + 1 :]
                assert not cards.is_valid(typo), typo


@given(card_bodies)
def test_every_adjacent_transposition_is_caught_except_luhns_09_blind_spot(body: str) -> None:
    number = _card(body)
    for position in range(cards.CARD_LENGTH - 1):
        a, b = number[position], number[position + 1]
        if a == b or {a, b} == {"0", "9"}:
            # Luhn maps 0 and 9 to the same doubled digit sum, so swapping 09 <-> 90 passes.
            continue
        swapped = number[:position] + b + a + number[position + 2 :]
        # The check digit catches it wherever it happens, prefix and check digit included.
        assert cards.luhn_check_digit(swapped[:-1]) != swapped[-1], swapped
        assert not cards.is_valid(swapped)


def test_new_cards_carry_the_prefix_and_a_valid_check_digit() -> None:
    drawn = {cards.new_card_number("1234") for _ in range(200)}
    assert len(drawn) == 200  # 11 random digits: no two alike in a small sample
    for number in drawn:
        assert len(number) == 16 and number.isdigit() and number.startswith("1234")
        assert cards.is_valid(number, "1234")
        assert not cards.is_valid(number, "6375")


@pytest.mark.parametrize(
    "number",
    [
        "",
        "6375",
        _card("12345678901")[:-1],  # 15 digits
        _card("12345678901") + "0",  # 17 digits
        "6375 1234 5678 9012",
        "٦٣٧٥١٢٣٤٥٦٧٨٩٠١٢",  # Arabic-Indic digits
        _card("12345678901", "4000"),  # another coalition's card
    ],
)
def test_what_is_not_a_card_of_ours_is_refused(number: str) -> None:
    assert not cards.is_valid(number, "6375")
    with pytest.raises(InvalidRequest) as refused:
        services.check_card_number(number, "6375")
    assert list(refused.value.extra["errors"]) == ["card_number"]


def test_a_till_prints_the_prefix_and_the_last_four_only() -> None:
    assert cards.masked("6375123456789012") == "6375 •••• •••• 9012"


# Rotating codes


def _secret(session: Session, member_id: int) -> str:
    return session.execute(
        select(members.c.totp_secret).where(members.c.id == member_id)
    ).scalar_one()


def _code(session: Session, member_id: int, at: datetime) -> str:
    return codes.current_code(_secret(session, member_id), at)[0]


def test_a_code_expires_at_the_end_of_its_step(session: Session) -> None:
    member_id = f.member(session)
    code, expires_at = codes.current_code(_secret(session, member_id), NOW)
    assert len(code) == 6 and code.isdigit()
    assert expires_at == datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)


def test_a_code_is_accepted_once_in_its_step(session: Session) -> None:
    member_id = f.member(session)
    code = _code(session, member_id, NOW)

    codes.consume(session, member_id, code, NOW)
    with pytest.raises(codes.InvalidCode):
        codes.consume(session, member_id, code, NOW + timedelta(seconds=10))

    # The next step brings the next code, which works once in turn.
    following = _code(session, member_id, NOW + STEP)
    codes.consume(session, member_id, following, NOW + STEP)


def test_a_code_stops_working_when_its_step_ends(session: Session) -> None:
    member_id = f.member(session)
    code = _code(session, member_id, NOW)
    later = NOW + STEP
    if _code(session, member_id, later) == code:  # one in a million: the next code is equal
        pytest.skip("consecutive codes happen to be equal")
    with pytest.raises(codes.InvalidCode):
        codes.consume(session, member_id, code, later)


@pytest.mark.parametrize(
    "wrong", ["", "12345", "1234567", "abcdef", "\uff11\uff12\uff13\uff14\uff15\uff16", "12 345"]
)
def test_what_is_not_a_six_digit_code_is_wrong(session: Session, wrong: str) -> None:
    member_id = f.member(session)
    with pytest.raises(codes.InvalidCode):
        codes.consume(session, member_id, wrong, NOW)


def _wrong(session: Session, member_id: int, at: datetime) -> str:
    right = _code(session, member_id, at)
    return str((int(right) + 1) % 10**6).zfill(6)


def test_five_wrong_codes_lock_redemption_for_fifteen_minutes(session: Session) -> None:
    member_id = f.member(session)
    for minute in range(5):
        at = NOW + timedelta(minutes=minute)
        with pytest.raises(codes.InvalidCode):
            codes.consume(session, member_id, _wrong(session, member_id, at), at)
        codes.record_failure(session, member_id, at)
    fifth = NOW + timedelta(minutes=4)

    almost = fifth + codes.LOCK_DURATION - timedelta(seconds=1)
    with pytest.raises(codes.RedemptionLocked):
        codes.consume(session, member_id, _code(session, member_id, almost), almost)

    unlocked = fifth + codes.LOCK_DURATION
    codes.consume(session, member_id, _code(session, member_id, unlocked), unlocked)


def test_four_wrong_codes_then_a_pause_start_counting_again(session: Session) -> None:
    member_id = f.member(session)
    for minute in range(4):
        codes.record_failure(session, member_id, NOW + timedelta(minutes=minute))
    # The window of the first failure has passed: the next wrong code is the first of a new
    # window, so one more does not lock.
    after = NOW + codes.FAILURE_WINDOW + timedelta(minutes=1)
    codes.record_failure(session, member_id, after)
    codes.consume(session, member_id, _code(session, member_id, after), after)


def test_a_right_code_clears_earlier_wrong_ones(session: Session) -> None:
    member_id = f.member(session)
    for minute in range(4):
        codes.record_failure(session, member_id, NOW + timedelta(minutes=minute))
    at = NOW + timedelta(minutes=4)
    codes.consume(session, member_id, _code(session, member_id, at), at)

    codes.record_failure(session, member_id, at + timedelta(seconds=40))
    later = at + timedelta(minutes=1)
    codes.consume(session, member_id, _code(session, member_id, later), later)


def test_an_unknown_member_has_no_code(session: Session) -> None:
    with pytest.raises(NotFound):
        codes.consume(session, 10**12, "123456", NOW)
