"""Consent and privacy (SPEC 2): a member's marketing consents per channel and for sharing its
contact with partners, kept as an append-only history; the audience a merchant may contact;
the member's export of all its data; and its erasure."""
