-- A purchase's statements as the platform sends them (docs/benchmarks.md, "What limits a
-- purchase"), run by pgbench as the app's role: what PostgreSQL alone gives for this SQL, with no
-- Python in front. bench/run.py passes the id ranges of the data it built (-D).
\set m random(:first_merchant, :last_merchant)
\set mem random(:first_member, :last_member)
\set tok :m + :token_offset
BEGIN;
SELECT set_config('coalition.tenant', 'merchant:' || :m, true), set_config('coalition.member_account', '', true), coalition_token_live(:tok);
SELECT m.id, m.public_id, m.card_number, m.status, m.tier, a.id AS acct, a.balance, a.debt, a.welcomed, (SELECT base_rate FROM merchants WHERE id = :m), (SELECT id FROM accounts WHERE merchant_id = :m) AS macct, (SELECT id FROM accounts WHERE kind = 'operator') FROM members m JOIN accounts a ON a.member_id = m.id WHERE m.id = :mem FOR UPDATE OF a \gset
SELECT id, public_id FROM transactions WHERE merchant_id = :m AND type = 'earn' AND external_id IN ('pgbench-' || :client_id || '-' || :mem);
INSERT INTO transactions (public_id, type, member_account_id, merchant_id, points, actor_type, actor_id, reason, created_at, amount_minor, currency, external_id, breakdown, occurred_at) VALUES ('txn_' || md5(random()::text), 'earn', :acct, :m, 12, 'merchant_client', 'cli_pgbench', 'purchase', now(), 1250, 'EUR', 'pgbench-' || md5(random()::text), '{"base": 12, "campaign": 0, "tier": 0, "welcome": 0, "stamp": 0}', NULL) RETURNING id AS txid \gset
INSERT INTO transfers (transaction_id, kind, debit_account_id, credit_account_id, amount, created_at) VALUES (:txid, 'award', :macct, :acct, 12, now()) RETURNING id AS trid \gset
INSERT INTO lots (account_id, issuer_account_id, transfer_id, source, points, remaining, expires_at, created_at) VALUES (:acct, :macct, :trid, 'merchant', 12, 12, now() + interval '1 year', now()) RETURNING id;
UPDATE accounts SET balance = balance + 12, debt = 0, welcomed = true WHERE id = :acct;
INSERT INTO outbox_events (public_id, type, merchant_id, member_id, data, created_at) VALUES ('evt_' || md5(random()::text), 'purchase.created', :m, :mem, '{"transaction": {"id": "txn_pgbench", "type": "earn", "points": 12}}', now()) RETURNING id;
END;
