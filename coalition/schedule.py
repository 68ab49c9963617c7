"""The job schedule (SPEC 3.8), one list for both runners: `rq cron coalition.schedule` when Redis
is configured (`coalition worker` starts it), and the in-process scheduler of `coalition serve` on
the embedded default, which `create_app` hands this list (`coalition.jobs.init_app`). It names
jobs of every package, so it belongs to the composition root, beside `create_app`.

Daily jobs are enqueued hourly rather than once at midnight: `run_daily_jobs` does each closed
business day once and catches up days missed while nothing ran, so an extra run costs nothing
and a missed one is made good by the next. Cron fields are in the server's local time.

Importing this module registers the list with RQ's cron, which is how `rq cron` reads it; in any
other process the registration is never read."""

from rq import cron

from coalition.jobs import Loop, Schedule, run_daily_jobs
from coalition.tasks import purge_idempotency_keys
from draws.tasks import close_due_draws
from settlement.tasks import submit_payments
from webhooks.tasks import run_in_process as webhooks_pump

SCHEDULE: Schedule = (
    (run_daily_jobs, "default", "5 * * * *"),
    (purge_idempotency_keys, "default", "35 * * * *"),
    # Payments waiting on Stripe (an error, an outcome not known) are retried hourly; the job
    # is safe to run any number of times.
    (submit_payments, "settlement", "50 * * * *"),
    # Draws close at their closing time, to the minute; a run with none due is one query.
    (close_due_draws, "default", "* * * * *"),
)

# Beside the in-process schedule (`coalition serve` without Redis): the webhooks' pump, every
# half second, with its delivery threads. With Redis, `coalition worker` runs it instead.
LOOPS: tuple[Loop, ...] = (webhooks_pump,)

for function, queue_name, when in SCHEDULE:
    cron.register(function, queue_name=queue_name, cron=when)
