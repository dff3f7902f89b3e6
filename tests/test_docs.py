"""The documentation keeps up with the code: every setting an operator can set is in the
README's settings table, and references point at documents a clone has."""

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


# Documents that live beside the repository, not in it: a reader of a clone cannot follow them.
OUTSIDE = ("../shared", "DESIGN.md", "RELIABILITY.md", "STYLE.md")


def test_references_point_inside_the_repository():
    root = README.parent
    files = [README, *root.glob("docs/*.md"), *(root / "src").rglob("*.py"), *(root / "tests").glob("*.py")]
    found = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in files
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if any(name in line for name in OUTSIDE)
    ]
    assert found == [], "point at docs/ instead"
