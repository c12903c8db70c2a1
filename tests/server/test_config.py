"""Server settings: TOML file, OPSEAL_* overrides and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from opseal.server.config import ConfigError, Settings, load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "opseal.toml"


def test_defaults_use_the_embedded_sqlite_database():
    """With no file and no variables, the server runs on SQLite under ./var."""
    settings = load_settings(None, env={})
    assert settings.database_url == "sqlite+aiosqlite:///var/opseal.db"
    assert not settings.is_postgres


def test_environment_overrides_the_file(tmp_path):
    """OPSEAL_PORT and OPSEAL_LOG_JSON override the TOML file and are coerced."""
    path = tmp_path / "opseal.toml"
    path.write_text('port = 9000\nlog_json = true\ndatabase_url = "postgresql+asyncpg://x/y"\n')
    settings = load_settings(path, env={"OPSEAL_PORT": "9443", "OPSEAL_LOG_JSON": "no"})
    assert (settings.port, settings.log_json, settings.is_postgres) == (9443, False, True)


def test_example_deploy_file_is_valid():
    """deploy/opseal.toml loads once its TLS paths point at files that exist."""
    settings = load_settings(DEPLOY, env={"OPSEAL_TLS_CERT": "", "OPSEAL_TLS_KEY": ""})
    assert settings.port == 8443
    assert settings.max_batch == 500


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OPSEAL_PORT": "70000"}, "'port': expected a TCP port"),
        ({"OPSEAL_PORT": "eighty"}, "'port': expected int"),
        ({"OPSEAL_DATABASE_URL": "mysql://x"}, "'database_url'"),
        ({"OPSEAL_TLS_CERT": "/nonexistent.pem"}, "tls_cert and tls_key both set"),
        ({"OPSEAL_MAX_BATCH": "0"}, "'max_batch': expected a positive integer"),
        ({"OPSEAL_LOG_LEVEL": "loud"}, "'log_level'"),
    ],
)
def test_bad_values_name_the_setting_and_what_was_expected(env, message):
    """A bad setting stops start-up with a message a person can act on."""
    with pytest.raises(ConfigError, match=message):
        load_settings(None, env=env)


def test_unknown_keys_and_bad_toml_are_refused(tmp_path):
    """Typos in the file are reported rather than ignored."""
    path = tmp_path / "opseal.toml"
    path.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match=r"unknown settings .*: prot"):
        load_settings(path, env={})
    path.write_text("port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", env={})


def test_settings_are_immutable():
    """Settings are parsed once; changes make a new object."""
    settings = Settings()
    assert settings.replace(port=1).port == 1
    assert settings.port == 8443


@pytest.mark.parametrize(
    ("written", "runs_on"),
    [
        ("postgresql://u@db:5432/opseal", "postgresql+asyncpg://u@db:5432/opseal"),
        ("postgres://u@db/opseal", "postgresql+asyncpg://u@db/opseal"),
        ("postgresql+psycopg2://u@db/opseal", "postgresql+asyncpg://u@db/opseal"),
        ("sqlite:///srv/opseal.db", "sqlite+aiosqlite:///srv/opseal.db"),
        ("SQLITE:///srv/opseal.db", "sqlite+aiosqlite:///srv/opseal.db"),
    ],
)
def test_database_urls_as_operators_write_them_pick_the_async_driver(written, runs_on):
    """The URL an operator copies from their database's docs works; the driver is chosen here."""
    assert load_settings(None, env={"OPSEAL_DATABASE_URL": written}).database_url == runs_on


@pytest.mark.parametrize("url", ["sqlite://", "postgresql:/x", "mysql://u@db/x", "opseal.db"])
def test_database_urls_that_name_no_database_or_driver_we_run_are_refused(url):
    with pytest.raises(ConfigError, match="'database_url': expected a postgresql://"):
        load_settings(None, env={"OPSEAL_DATABASE_URL": url})


def test_plain_urls_run_the_real_server_commands(tmp_path):
    """`opseal-server migrate` and `init` work with a plain sqlite:/// and postgresql:// URL."""
    import os
    import subprocess
    import sys
    import uuid

    urls = [f"sqlite:///{tmp_path / 'plain.db'}"]
    pg = os.environ.get("OPSEAL_TEST_POSTGRES_URL", "")
    name = f"opseal_t_{uuid.uuid4().hex[:12]}"
    admin = pg.replace("postgresql+asyncpg://", "postgresql://", 1)
    if pg:
        subprocess.run(["psql", admin, "-qc", f'CREATE DATABASE "{name}"'], check=True)
        urls.append(f"{admin.rsplit('/', 1)[0]}/{name}")
    try:
        for url in urls:
            env = {**os.environ, "OPSEAL_DATABASE_URL": url}
            for command in ("migrate", "init"):
                argv = [sys.executable, "-m", "opseal.server.cli", command]
                run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
                assert run.returncode == 0, (url, command, run.stderr)
    finally:
        if pg:
            subprocess.run(["psql", admin, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                           check=True)  # fmt: skip
