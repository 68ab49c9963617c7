"""Deployment settings: what is read from the environment (`settings`) and gunicorn's defaults
(`gunicorn`). Nothing here knows the domain or imports the project's packages;
`coalition.create_app` reads these and wires the rest."""
