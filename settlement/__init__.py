"""Settlement: economics, nightly runs, positions and flows, statements, payments, reports.
It reads the ledger (`coalition.ledger`) and never writes to it."""
