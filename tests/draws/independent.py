"""A second implementation of the draw procedure, written from docs/draws.md alone and sharing
no code with `draws.procedure`: it expands the list into one slot per entry and redraws from
the slots left, where the platform walks cumulative counts. It takes a draw as the public API
shows it (hex strings and a JSON list), as an outside verifier would."""

from __future__ import annotations

from hashlib import sha256
from typing import Any


def list_bytes(entries: list[dict[str, Any]]) -> bytes:
    ordered = sorted(entries, key=lambda e: e["entrant"])
    text = "".join(f"{e['entrant']} {e['entries']:d}\n" for e in ordered)
    return text.encode("ascii")


def recompute(public: dict[str, Any]) -> list[str]:
    """The winners of a closed draw from its public fields; raises AssertionError when the
    seed does not match its published hash or the list does not match its hash."""
    seed = bytes.fromhex(public["seed"])
    assert len(seed) == 32
    assert sha256(seed).hexdigest() == public["seed_hash"], "seed does not match its hash"
    listed = list_bytes(public["entries"])
    assert sha256(listed).hexdigest() == public["entries_hash"], "list does not match its hash"
    slots: list[str] = []
    for e in sorted(public["entries"], key=lambda e: e["entrant"]):
        slots.extend([e["entrant"]] * e["entries"])
    key = seed + sha256(listed).digest()
    counter = 0
    won: list[str] = []
    while slots and len(won) < public["winners_count"]:
        n = len(slots)
        while True:
            r = int(sha256(key + counter.to_bytes(8, "big")).hexdigest(), 16)
            counter += 1
            if r < (1 << 256) // n * n:
                break
        winner = slots[r % n]
        won.append(winner)
        slots = [s for s in slots if s != winner]
    return won
