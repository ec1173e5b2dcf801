"""Configuration: defaults ← file ← environment, and one-line errors that name the source, the key and what is
expected."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, load_config


def write(tmp_path, text: str):
    p = tmp_path / "gateway.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_run_on_sqlite_in_the_data_dir(tmp_path):
    cfg = load_config(None, environ={"HELPDESK_GATEWAY_CONFIG": str(write(tmp_path, ""))})
    assert cfg.storage.database_url().startswith("sqlite:///") and cfg.storage.database_url().endswith("data/helpdesk.sqlite3")
    assert cfg.email.addresses == ["assistenza@example.org"] and cfg.email.smtp.port == 2525
    assert cfg.web.port == 8080 and cfg.voice.sip.port == 5060


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, '[storage]\nurl = "sqlite:///from-file.db"\n[email.smtp]\nport = 2600\n')
    cfg = load_config(path, environ={"HELPDESK_GATEWAY__STORAGE__URL": "postgresql+psycopg://db/helpdesk", "HELPDESK_GATEWAY__EMAIL__SMTP__PORT": "2700"})
    assert cfg.storage.url == "postgresql+psycopg://db/helpdesk"
    assert cfg.email.smtp.port == 2700


def test_lists_come_from_the_environment_in_toml_syntax(tmp_path):
    cfg = load_config(write(tmp_path, ""), environ={"HELPDESK_GATEWAY__EMAIL__ADDRESSES": '["help@x.it", "assistenza@x.it"]'})
    assert cfg.email.addresses == ["help@x.it", "assistenza@x.it"]


@pytest.mark.parametrize(
    "text, env, expected",
    [
        ('[web]\nport = "eighty"\n', {}, r"gateway.toml: web.port: Input should be a valid integer"),
        ('[web]\nprot = 80\n', {}, r"gateway.toml: web.prot: unknown key"),
        ('[nonsense]\nx = 1\n', {}, r"gateway.toml: nonsense: unknown key"),
        ('[storage]\nurl = "mysql://x"\n', {}, r"gateway.toml: storage.url: expected an SQLAlchemy URL"),
        ('[ticketing]\nnumber_prefix = "hd"\n', {}, r"gateway.toml: ticketing.number_prefix: String should match"),
        ('[ticketing.sla.critical]\nrespond_minutes = 0\nresolve_minutes = 10\n', {}, r"ticketing.sla.critical.respond_minutes: Input should be greater than 0"),
        ('[web\n', {}, r"gateway.toml: not valid TOML"),
        ("", {"HELPDESK_GATEWAY__EMAIL__SMTP__PORT": "99999"}, r"^environment HELPDESK_GATEWAY__EMAIL__SMTP__PORT: email.smtp.port: Input should be less than or equal to 65535"),
        ("", {"HELPDESK_GATEWAY__WEB__HOTS": "x"}, r"^environment HELPDESK_GATEWAY__WEB__HOTS: web.hots: unknown key"),
    ],
)
def test_a_bad_setting_is_one_line_naming_source_key_and_expectation(tmp_path, text, env, expected):
    with pytest.raises(ConfigError, match=expected) as e:
        load_config(write(tmp_path, text), environ=env)
    assert "\n" not in str(e.value)


def test_a_named_file_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "nope.toml", environ={})


def test_the_shipped_configuration_file_is_valid():
    from pathlib import Path

    cfg = load_config(Path(__file__).parent.parent / "config" / "gateway.toml", environ={})
    assert cfg.ticketing.number_prefix == "HD"
