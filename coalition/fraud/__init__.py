"""Fraud (SPEC 3.10): velocity limits on spending (`velocity`), the events they leave
(`models`), and the operator's list of them (`reads`, `api`; the console page is in
`coalition.staff.views`)."""
