"""The draw procedure (SPEC 2, docs/draws.md): the winners are a deterministic function of the
seed and the closed list, which an independent implementation reproduces from the public
values alone; a tampered list or seed gives other winners (or fails its hash); every entry is
equally likely, and one member wins at most once."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from draws import procedure
from tests.draws import independent

pseudonym = st.binary(min_size=12, max_size=12).map(bytes.hex)
entries_lists = st.dictionaries(pseudonym, st.integers(1, 50), min_size=0, max_size=40).map(
    lambda found: list(found.items())
)
seeds = st.binary(min_size=32, max_size=32)


def public(seed: bytes, entries: list[tuple[str, int]], count: int) -> dict[str, object]:
    """A closed draw as the API shows it."""
    return {
        "seed": seed.hex(),
        "seed_hash": procedure.seed_hash(seed),
        "entries_hash": procedure.entries_hash(entries),
        "entries": [{"entrant": e, "entries": n} for e, n in sorted(entries)],
        "winners_count": count,
    }


@settings(max_examples=200, deadline=None)
@given(seeds, entries_lists, st.integers(1, 10))
def test_an_independent_implementation_draws_the_same_winners(
    seed: bytes, entries: list[tuple[str, int]], count: int
) -> None:
    winners = procedure.winners(seed, entries, count)

    assert independent.recompute(public(seed, entries, count)) == winners
    assert len(winners) == min(count, len(entries))
    assert len(set(winners)) == len(winners)  # a member wins at most once
    assert set(winners) <= {e for e, _ in entries}


@settings(max_examples=100, deadline=None)
@given(seeds, entries_lists, st.integers(1, 10))
def test_the_order_the_entries_come_in_does_not_matter(
    seed: bytes, entries: list[tuple[str, int]], count: int
) -> None:
    shuffled = list(reversed(entries))
    assert procedure.winners(seed, shuffled, count) == procedure.winners(seed, entries, count)
    assert procedure.entries_hash(shuffled) == procedure.entries_hash(entries)


SEED = bytes(range(32))
ENTRIES = [(hashlib.sha256(bytes([i])).hexdigest()[:24], 1 + i % 4) for i in range(30)]


def test_a_changed_seed_fails_its_hash_and_draws_other_winners() -> None:
    honest = public(SEED, ENTRIES, 3)
    other_seed = bytes([SEED[0] ^ 1]) + SEED[1:]

    with pytest.raises(AssertionError, match="seed does not match"):
        independent.recompute({**honest, "seed": other_seed.hex()})
    assert procedure.winners(other_seed, ENTRIES, 3) != procedure.winners(SEED, ENTRIES, 3)


def test_a_tampered_list_fails_its_hash_and_draws_other_winners() -> None:
    honest = public(SEED, ENTRIES, 3)
    tampered = [(e, n + 5) if i == 0 else (e, n) for i, (e, n) in enumerate(ENTRIES)]
    dropped = ENTRIES[1:]

    for changed in (tampered, dropped):
        with pytest.raises(AssertionError, match="list does not match"):
            independent.recompute({**honest, "entries": public(SEED, changed, 3)["entries"]})
        # Even hashed anew, another list is another draw: the list's hash feeds every block.
        assert procedure.winners(SEED, changed, 3) != procedure.winners(SEED, ENTRIES, 3)


def test_the_canonical_list_is_one_sorted_line_per_entrant() -> None:
    entries = [("b" * 24, 2), ("a" * 24, 10)]
    assert procedure.canonical(entries) == f"{'a' * 24} 10\n{'b' * 24} 2\n".encode("ascii")
    assert procedure.canonical([]) == b""
    for bad in ([("A" * 24, 1)], [("a" * 24, 0)], [("a" * 24, 1), ("a" * 24, 2)]):
        with pytest.raises(ValueError):
            procedure.canonical(bad)


def test_every_entry_is_equally_likely_to_win() -> None:
    """Over many seeds, an entrant with three entries of six wins about half the draws."""
    entries = [("a" * 24, 3), ("b" * 24, 2), ("c" * 24, 1)]
    wins = Counter(
        procedure.winners(hashlib.sha256(b"%d" % i).digest(), entries, 1)[0] for i in range(6000)
    )
    assert abs(wins["a" * 24] - 3000) < 200
    assert abs(wins["b" * 24] - 2000) < 200
    assert abs(wins["c" * 24] - 1000) < 200


def test_the_pages_snippet_prints_the_winners_with_python_alone(tmp_path: Path) -> None:
    winners = procedure.winners(SEED, ENTRIES, 4)
    program = procedure.snippet(
        SEED.hex(), procedure.seed_hash(SEED), procedure.entries_hash(ENTRIES), 4
    )
    (tmp_path / "verify.py").write_text(program)
    (tmp_path / "entries.txt").write_bytes(procedure.canonical(ENTRIES))

    ran = subprocess.run(
        [sys.executable, "-I", "verify.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert ran.stdout.split() == winners

    (tmp_path / "entries.txt").write_bytes(procedure.canonical(ENTRIES[1:]))
    refused = subprocess.run(
        [sys.executable, "-I", "verify.py"], cwd=tmp_path, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "not the entries list closed" in refused.stderr
