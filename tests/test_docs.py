"""The documentation keeps up with the code: every setting an operator can set is in the
README's settings table."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices

from dispatch.config import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def _env_names(name: str, alias: object) -> list[str]:
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, str):
        return [alias]
    return [(Settings.model_config.get("env_prefix", "") + name).upper()]


def test_every_setting_is_in_the_readme_settings_table():
    readme = README.read_text()
    names = [env for name, field in Settings.model_fields.items() for env in _env_names(name, field.validation_alias)]
    assert "DISPATCH_RATE_LIMIT_BURST" in names  # the names are the ones the environment is read by
    missing = [env for env in names if f"`{env}`" not in readme]
    assert missing == [], f"add these settings to the table in README.md: {missing}"
