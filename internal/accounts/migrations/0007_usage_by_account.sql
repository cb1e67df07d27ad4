-- The console's per-account pages (a customer's own usage, the vendor's
-- account page) read one account's counts and its first and last pull and
-- check. usage_daily's key starts with day, so without the first index
-- each of those read every account's daily rows; with only
-- usage_events (account, time), MIN/MAX of one outcome read each of the
-- account's events (together 16 to 20 ms a page on the bench's demo data,
-- 65 ms at 2,000 accounts: bench/notes/2026-12-07-console-pages.md).
CREATE INDEX usage_daily_account_day ON usage_daily (account, day);
CREATE INDEX usage_events_account_outcome_time ON usage_events (account, outcome, time);
