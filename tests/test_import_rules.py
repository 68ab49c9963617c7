"""The house's import rules (docs/architecture.md, `[tool.importlinter]` in pyproject.toml) fail
`make lint` when broken, naming the rule: checked on a copy of the code with one forbidden
import added."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "coalition",
    "merchants",
    "settlement",
    "webhooks",
    "draws",
    "rewards",
    "insights",
    "config",
)


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-logo", "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("__pycache__", "migrations", "templates", "static"),
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")


def test_a_core_module_importing_a_merchants_model_fails_the_lint_naming_the_rule(tmp_path):
    _copy(tmp_path)
    assert lint_imports(tmp_path).returncode == 0

    with (tmp_path / "coalition" / "ledger" / "reads.py").open("a") as module:
        module.write("\nfrom merchants.models import Merchant  # noqa: E402, F401\n")
    broken = lint_imports(tmp_path)

    assert broken.returncode == 1
    assert "The core imports none of the other root packages BROKEN" in broken.stdout
    assert "coalition.ledger.reads -> merchants.models" in broken.stdout


def test_draws_importing_settlement_fails_the_lint_naming_the_rule(tmp_path):
    _copy(tmp_path)
    with (tmp_path / "draws" / "reads.py").open("a") as module:
        module.write("\nfrom settlement import runs  # noqa: E402, F401\n")
    broken = lint_imports(tmp_path)

    assert broken.returncode == 1
    assert "Draws never import settlement or webhooks BROKEN" in broken.stdout
    assert "draws.reads -> settlement.runs" in broken.stdout


def test_insights_importing_webhooks_fails_the_lint_naming_the_rule(tmp_path):
    _copy(tmp_path)
    with (tmp_path / "insights" / "reads.py").open("a") as module:
        module.write("\nfrom webhooks import services  # noqa: E402, F401\n")
    broken = lint_imports(tmp_path)

    assert broken.returncode == 1
    assert "Insights never import webhooks BROKEN" in broken.stdout
