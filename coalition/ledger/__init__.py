"""The points ledger (SPEC 2): accounts, immutable transfers, lots and their consumption, holds.

`models` holds the tables, `operations` changes points (the only entry point that does), using
`accounts` to open and lock accounts and `lots` to choose and record which lots a debit takes;
`reads` answers balance questions; `verify` checks every invariant."""
