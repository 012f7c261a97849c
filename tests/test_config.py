"""Settings from YAML: validation, precedence, and the refusal to hold an API key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulk_sync.config import Settings, load_config
from bulk_sync.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_loads_and_matches_defaults_where_it_sets_them() -> None:
    s = load_config(ROOT / "config.example.yaml")
    assert s.base_url == "https://api.invisiblecollector.com"
    assert s.concurrency == 8
    assert s.on_conflict == "error"


def test_yaml_keys_accept_dashes_and_paths_expand(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max-attempts: 3\nstate: ~/state.db\ncolumns:\n  customer_id: Nº Cliente\n")
    s = load_config(cfg)
    assert s.max_attempts == 3
    assert s.state is not None
    assert "~" not in str(s.state)
    assert s.columns == {"customer_id": "Nº Cliente"}


def test_flags_override_the_file_and_unset_flags_do_not(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("concurrency: 3\nrate: 5\n")
    s = load_config(cfg).replace(concurrency=16, rate=None)
    assert (s.concurrency, s.rate) == (16, 5.0)


@pytest.mark.parametrize(
    "text",
    [
        "token: abc",
        "api_key: something",
        "base_url: https://x\nheaders_secret: " + "a1" * 32,
    ],
)
def test_a_config_that_holds_an_api_key_is_refused(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match="IC_API_TOKEN"):
        load_config(cfg)


def test_the_refusal_does_not_echo_the_key(tmp_path: Path) -> None:
    key = "f" * 64
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"base_url: {key}\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert key not in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("concurrency: 0", "concurrency"),
        ("on_conflict: first", "on_conflict"),
        ("colour: blue", "unknown setting"),
        ("concurrency: [1", "not valid YAML"),
        ("- a\n- b", "mapping"),
        ("max_attempts: lots", "max_attempts"),
        ("columns:\n  customer: x", "columns"),
    ],
)
def test_bad_settings_name_what_is_wrong(tmp_path: Path, text: str, fragment: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_config(cfg)


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_token_comes_from_the_named_environment_variable_only() -> None:
    s = Settings(token_env="MY_KEY")
    assert s.token({"MY_KEY": " k1 ", "IC_API_TOKEN": "other"}) == "k1"
    assert s.token({"IC_API_TOKEN": "other"}) is None
