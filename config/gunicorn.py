"""gunicorn defaults for `coalition serve`; its command-line options override these."""

import os

bind = "127.0.0.1:8000"  # `coalition serve --host --port` sets it
# Measured on 2 cores shared with PostgreSQL (docs/benchmarks.md, decision 123): gthread
# workers of 4 threads; `make bench` runs 3 of them.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = os.environ.get("WEB_WORKER_CLASS", "gthread")
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-"
errorlog = "-"
# A request id in every access line, to match the application's JSON logs.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'
# The same line, each field worked out only when the format names it (coalition/access_log.py).
logger_class = "coalition.access_log.AccessLog"
# Above the app's own bounds (coalition/request_limits.py), which answer with a problem:
# what gunicorn refuses it answers itself, in HTML. 8190 is the most gunicorn takes for a line.
limit_request_line = 8190
limit_request_field_size = 32768
limit_request_fields = 200
