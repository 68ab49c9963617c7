"""The points ledger (SPEC 2): accounts, immutable transfers, lots and their consumption, holds.

`models` holds the tables, `accounts` opens and locks accounts, `operations` changes points,
`lots` decides which lots a debit takes, `reads` answers balance questions, `verify` checks every
invariant. Only `operations` and `accounts` write."""
