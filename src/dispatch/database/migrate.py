"""Run the Alembic migrations: the only way the schema changes."""

from __future__ import annotations

from alembic.config import Config

from alembic import command
from dispatch.config import Settings
from dispatch.database.core import ensure_sqlite_folder


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(settings.resolved_migrations_dir))
    cfg.set_main_option("sqlalchemy.url", settings.resolved_database_url.replace("%", "%%"))
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    ensure_sqlite_folder(settings.resolved_database_url)
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings), revision)
