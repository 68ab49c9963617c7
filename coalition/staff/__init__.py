"""The operator's staff (SPEC 1, 3.9): accounts with a role (`admin`, `finance`, `support`), a
password and a second factor, and the `/ops` console they sign in to."""
