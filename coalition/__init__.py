"""Coalition: a coalition loyalty platform. `create_app` is the composition root: with the CLI, the
demo data and the job schedule, the only place that knows every package and wires them together."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

MIGRATIONS = str(Path(__file__).with_name("migrations"))
MODEL_MODULES = (
    "coalition.members.models",
    "coalition.privacy.models",
    "coalition.ledger.models",
    "coalition.idempotency",
    "coalition.outbox",
    "coalition.oauth.models",
    "coalition.jobs",
    "coalition.economics",
    "coalition.staff.models",
    "coalition.audit",
    "coalition.fraud.models",
    "coalition.segments.models",
    "merchants.models",
    "settlement.models",
    "webhooks.models",
    "rewards.models",
    "draws.models",
    "insights.models",
)


def create_app(environ: Mapping[str, str] | None = None) -> Flask:
    """The application, configured from `environ` (default: the process environment)."""
    # Imported here, not above: every submodule imports this package first.
    from coalition import cli, health, jobs, logs, request_ids, request_limits, tasks, tenancy
    from coalition.database import engine_options, prepare_engine
    from coalition.extensions import db, migrate
    from coalition.fraud import api as fraud_api
    from coalition.fraud import ops_views as fraud_pages
    from coalition.members import api as members_api
    from coalition.members import views as member_site
    from coalition.oauth import api as clients_api
    from coalition.oauth import cli as oauth_cli
    from coalition.oauth import views as oauth_views
    from coalition.privacy import api as audience_api
    from coalition.schedule import LOOPS, SCHEDULE
    from coalition.segments import api as segments_api
    from coalition.segments import ops_views as segment_ops_pages
    from coalition.staff import cli as staff_cli
    from coalition.staff import views as staff_views
    from coalition.web import access, api, lean, pages, problems
    from config import settings
    from draws import api as draws_api
    from draws import ops_views as draw_ops_pages
    from draws import views as draw_pages  # its member pages join the member site
    from insights import api as insights_api
    from insights import ops_views as insight_pages
    from insights import portal as insights_portal  # noqa: F401 (its page joins the portal)
    from insights import tasks as insights_tasks
    from merchants import ops_views as merchant_pages
    from merchants.api import onboarding
    from merchants.api import points as points_api
    from merchants.api import rules as rules_api
    from merchants.api import settings as merchant_settings_api
    from merchants.portal import bp as merchant_portal
    from rewards import api as rewards_api
    from rewards import ops_views as reward_pages
    from rewards import tasks as rewards_tasks
    from rewards import views as reward_site  # its pages join the member site
    from settlement import api as settlement_api
    from settlement import cli as settlement_cli
    from settlement import ops_disputes as dispute_pages
    from settlement import ops_economics as economics_pages
    from settlement import portal as settlement_portal  # noqa: F401 (its pages join the portal)
    from settlement import premium_views  # noqa: F401 (its page joins the member site)
    from settlement import tasks as settlement_tasks
    from settlement import views as settlement_views
    from settlement.api import disputes, reports, runs, statements  # noqa: F401 (routes of settlement_api.bp)
    from settlement.api import economics as economics_api
    from settlement.api import payments as payments_api
    from settlement.api import stripe_events as stripe_webhooks
    from webhooks import api as webhooks_api
    from webhooks import events_api

    for module in MODEL_MODULES:  # every table joins the metadata before anything queries
        importlib.import_module(module)

    app = Flask(__name__)
    environ = os.environ if environ is None else environ
    app.config.update(settings.load(environ, Path(app.instance_path)))
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(
        app.config["SQLALCHEMY_DATABASE_URI"], app.config["DATABASE_STATEMENT_TIMEOUT_MS"]
    )
    logs.configure(app.config["LOG_LEVEL"])

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS, render_as_batch=True, compare_type=True)
    with app.app_context():
        prepare_engine(db.engine)
        tenancy.prepare_engine(db.engine, app.config["DATABASE_ROLE"])

    lean.init_app(app)
    request_ids.init_app(app)
    request_limits.init_app(app)
    jobs.init_app(app, schedule=SCHEDULE, loops=LOOPS)
    tasks.init_app(app)
    settlement_tasks.init_app(app)
    rewards_tasks.init_app(app)
    insights_tasks.init_app(app)
    problems.init_app(app)
    access.init_app(app)
    pages.init_app(app, ("/portal", "/me", "/ops", "/draws"))
    app.register_blueprint(health.bp)
    app.register_blueprint(oauth_views.bp)
    app.register_blueprint(member_site.bp)
    app.register_blueprint(merchant_portal)
    app.register_blueprint(stripe_webhooks.bp)
    app.register_blueprint(reward_site.images_bp)
    oauth_views.init_app(app)
    api.init_app(
        app,
        [
            onboarding.bp,
            clients_api.bp,
            fraud_api.bp,
            members_api.bp,
            audience_api.bp,
            points_api.bp,
            rules_api.bp,
            merchant_settings_api.bp,
            economics_api.bp,
            payments_api.bp,
            settlement_api.bp,
            events_api.bp,
            webhooks_api.bp,
            rewards_api.bp,
            draws_api.bp,
            segments_api.bp,
            insights_api.bp,
        ],
    )
    app.register_blueprint(staff_views.bp)
    app.register_blueprint(fraud_pages.bp)
    app.register_blueprint(merchant_pages.bp)
    app.register_blueprint(economics_pages.bp)
    app.register_blueprint(settlement_views.bp)
    app.register_blueprint(dispute_pages.bp)
    app.register_blueprint(reward_pages.bp)
    app.register_blueprint(draw_ops_pages.bp)
    app.register_blueprint(segment_ops_pages.bp)
    app.register_blueprint(insight_pages.bp)
    app.register_blueprint(draw_pages.bp)
    pages.declare_public(app)
    cli.init_app(app)
    oauth_cli.ops.add_command(staff_cli.create_staff_command)
    settlement_cli.init_app(app)
    if app.config["PROXY_COUNT"]:
        # Behind a TLS proxy: trust its X-Forwarded-For/-Proto/-Host so URLs read https.
        hops = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    return app
