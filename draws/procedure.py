"""The draw procedure (SPEC 2, Prize draws), byte by byte as docs/draws.md states it: pure
functions of public values, no database, so the public page's "verify it yourself" snippet and
any other implementation give the same winners.

- The seed is 32 random bytes; `seed_hash` is the SHA-256 of those bytes (hex), public from the
  opening.
- The closed entries list is one line per entrant, `<entrant> <entries>\\n` (the entrant's
  pseudonym, one space, its number of entries in decimal, a line feed), sorted by entrant,
  in ASCII; its SHA-256 (hex) is the `entries_hash`.
- Block `i` is SHA-256(seed || entries digest || i as 8 bytes big-endian), read as a 256-bit
  big-endian number `r`. With `n` entries left, a block is used only when
  `r < 2**256 - 2**256 % n` (rejection sampling: every entry equally likely, no modulo bias);
  then entry `r % n` wins, counted through the remaining entrants in list order. Its entrant
  is a winner and leaves the list with all its entries (one member wins at most once), and the
  next winner is drawn from what remains with the next block, until `winners_count` winners
  or no entrant is left."""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from itertools import accumulate

SEED_BYTES = 32
# An entrant's pseudonym: 24 lowercase hex digits (96 random bits), fresh for each draw.
ENTRANT = re.compile(r"[0-9a-f]{24}")
_SPACE = 2**256


def seed_hash(seed: bytes) -> str:
    """The public commitment to the seed: SHA-256 of its 32 bytes, lowercase hex."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"a seed is {SEED_BYTES} bytes")
    return hashlib.sha256(seed).hexdigest()


def canonical(entries: Iterable[tuple[str, int]]) -> bytes:
    """The closed entries list as the bytes that are hashed: `<entrant> <entries>\\n` per
    entrant, sorted by entrant. Every entrant appears once with at least one entry."""
    lines = []
    seen: set[str] = set()
    for entrant, count in sorted(entries):
        if not ENTRANT.fullmatch(entrant) or entrant in seen:
            raise ValueError(f"not a pseudonym, or one given twice: {entrant!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"an entrant has at least one entry: {entrant} {count!r}")
        seen.add(entrant)
        lines.append(f"{entrant} {count}\n")
    return "".join(lines).encode("ascii")


def entries_hash(entries: Iterable[tuple[str, int]]) -> str:
    return hashlib.sha256(canonical(entries)).hexdigest()


def _blocks(seed: bytes, digest: bytes) -> Iterable[int]:
    counter = 0
    while counter < 2**64:
        block = hashlib.sha256(seed + digest + counter.to_bytes(8, "big")).digest()
        yield int.from_bytes(block, "big")
        counter += 1


def winners(seed: bytes, entries: Sequence[tuple[str, int]], count: int) -> list[str]:
    """The winners, in the order drawn: distinct entrants, `count` of them or every entrant
    when fewer entered."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"a seed is {SEED_BYTES} bytes")
    digest = hashlib.sha256(canonical(entries)).digest()
    remaining = sorted(entries)
    blocks = iter(_blocks(seed, digest))
    won: list[str] = []
    while len(won) < count and remaining:
        bounds = list(accumulate(c for _, c in remaining))  # entries before each entrant's end
        total = bounds[-1]
        limit = _SPACE - _SPACE % total
        r = next(blocks)
        while r >= limit:  # the odds of this are below total / 2**256
            r = next(blocks)
        at = bisect_right(bounds, r % total)
        won.append(remaining.pop(at)[0])
    return won


# What the public page offers to run: the procedure again, standard library only, written
# plainly (no helper of ours), from the page's values and the list saved as `entries.txt`.
SNIPPET = """\
# Save the entries list as entries.txt (the page links it), then: python3 verify.py
import hashlib

seed = bytes.fromhex("{seed}")
seed_hash = "{seed_hash}"
entries_hash = "{entries_hash}"
winners_count = {winners_count}

data = open("entries.txt", "rb").read()
assert hashlib.sha256(seed).hexdigest() == seed_hash, "not the seed committed to at opening"
assert hashlib.sha256(data).hexdigest() == entries_hash, "not the entries list closed"
entries = []
for line in data.decode("ascii").splitlines():
    name, count = line.split(" ")
    entries.append((name, int(count)))

digest = hashlib.sha256(data).digest()
winners, counter = [], 0
while len(winners) < winners_count and entries:
    total = sum(count for _, count in entries)
    limit = 2**256 - 2**256 % total
    while True:
        block = hashlib.sha256(seed + digest + counter.to_bytes(8, "big")).digest()
        counter += 1
        r = int.from_bytes(block, "big")
        if r < limit:
            break
    ticket = r % total
    for i, (name, count) in enumerate(entries):
        if ticket < count:
            winners.append(name)
            del entries[i]
            break
        ticket -= count
print("\\n".join(winners))
"""


def snippet(seed: str, seed_hash: str, entries_hash: str, winners_count: int) -> str:
    """The "verify it yourself" program for a closed draw's public values."""
    return SNIPPET.format(
        seed=seed, seed_hash=seed_hash, entries_hash=entries_hash, winners_count=winners_count
    )
