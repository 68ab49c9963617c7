"""Prize draws (SPEC 2, 3.3-3.5): the operator opens a draw, members enter it with points or earn
free entries by purchases at chosen partners, and at closing the winners are computed from the
seed committed to at opening and the closed, pseudonymous list of entries, so that anyone can
recompute them (`draws.procedure`, docs/draws.md)."""
