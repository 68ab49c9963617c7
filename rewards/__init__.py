"""The rewards catalogue (SPEC 2, 3.3-3.5): rewards listed by the operator and by partner merchants,
members' orders paid with points (redemptions whose redeemer is the supplier), vouchers accepted
once at the supplier's till, and the nightly cancel of orders not fulfilled in time."""
