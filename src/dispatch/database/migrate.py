"""Run the Alembic migrations: the only way the schema changes.

The scripts ship inside the package (``dispatch/migrations``), so an installed wheel migrates
its own database; the checkout's ``alembic.ini`` points the ``alembic`` command at the same
directory.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from dispatch.config import Settings
from dispatch.database.core import ensure_sqlite_folder

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", settings.resolved_database_url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    ensure_sqlite_folder(settings.resolved_database_url)
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings), revision)
