"""Deployment configuration: settings read from the environment, logging, gunicorn and the RQ cron
schedule. Nothing here knows the domain; `coalition.create_app` reads these and wires the rest."""
