"""The points ledger (SPEC 2): accounts, immutable transfers, lots and their consumption, holds.

`models` holds the tables. Points change only through the writers: `awards` (the one way points
are issued), `operations` (redeem, refund clawback, reversal), `holds` and `expiry`; they share
`rows` (who acts, checks, row builders), `accounts` to open and lock accounts and `lots` to
choose and record which lots a debit takes. `reads` answers balance questions; `verify` checks
every invariant."""
