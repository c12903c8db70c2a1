"""Server settings: parsed once at start from a TOML file and ``OPSEAL_*`` variables.

Environment variables override the file; each setting's variable is ``OPSEAL_`` plus its name
in upper case (``OPSEAL_DATABASE_URL``, ``OPSEAL_PORT`` ...). Every value is validated and a
bad one stops the server with a message naming the setting and what was expected.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "Settings", "load_settings", "normalise_database_url"]


class ConfigError(Exception):
    """A setting that is missing, malformed or out of range."""


@dataclass(frozen=True)
class Settings:
    """Validated server settings. Sizes are in bytes, durations in seconds."""

    database_url: str = "sqlite+aiosqlite:///var/opseal.db"
    host: str = "127.0.0.1"
    port: int = 8443
    tls_cert: str = ""
    tls_key: str = ""
    instance_name: str = "OpSeal"
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch: int = 500
    max_blob_bytes: int = 2 * 1024 * 1024 * 1024
    max_blob_chunk_bytes: int = 8 * 1024 * 1024
    rate_limit_per_minute: int = 6000
    trusted_proxies: str = ""
    """Comma-separated addresses or networks (CIDR) of reverse proxies whose
    ``X-Forwarded-For`` names the client; from any other peer the header is ignored."""
    auditor_orgs: str = ""
    """Comma-separated organisation ids whose devices read the whole audit log (the instance
    auditor role, granted by the instance admin here); every other device reads only the
    entries of its own organisation and of the operations and areas it may read."""
    web_origins: str = ""
    """Comma-separated origins (``https://intranet.customs.example``) that host a copy of the
    web app pointed at this server (design §17): their pages may call the API (CORS)."""
    web_lock_after: int = 900
    """Seconds without a key press or click after which the web app locks (its config.json)."""
    metrics_token: str = field(default="", repr=False)
    """Bearer token ``/metrics`` asks for; when empty, ``/metrics`` answers loopback peers only."""
    max_org_blob_bytes: int = 50 * 1024**3
    """Most blob bytes (declared sizes) one organisation may hold on the instance."""
    max_operation_blob_bytes: int = 200 * 1024**3
    """Most blob bytes (declared sizes) one operation may hold."""
    blob_store: str = "database"
    """Where blob chunks' bytes live: ``database`` (in the database, the default, right for
    one node on SQLite), ``file:/absolute/folder`` (a local or shared filesystem) or
    ``s3://bucket/prefix`` (S3-compatible object storage; credentials from the AWS
    environment variables or profile, never from this file)."""
    s3_endpoint_url: str = ""
    """The S3 endpoint of a MinIO or Ceph gateway (``https://minio.lan:9000``); empty for AWS."""
    s3_region: str = ""
    migrations_path: str = ""
    """A folder of Alembic migration scripts to check the schema against instead of the
    installed ``opseal.migrations``; empty in production. The rolling-upgrade test sets it to
    play a node of the next release."""
    token_ttl: int = 3600
    challenge_ttl: int = 120
    log_level: str = "info"
    log_json: bool = True

    def __post_init__(self) -> None:
        url = normalise_database_url(self.database_url)
        if url is None:
            raise ConfigError("setting 'database_url': expected a postgresql://, postgres:// or "
                              "sqlite:/// URL")  # fmt: skip
        object.__setattr__(self, "database_url", url)
        _check(_is_blob_store(self.blob_store), "blob_store",
               "'database', 'file:/absolute/folder' or 's3://bucket/prefix'")  # fmt: skip
        _check(not self.s3_endpoint_url or self.s3_endpoint_url.startswith(("http://", "https://")),
               "s3_endpoint_url", "empty, or an http:// or https:// URL")  # fmt: skip
        _check(1 <= self.port <= 65535, "port", "a TCP port between 1 and 65535")
        _check(bool(self.tls_cert) == bool(self.tls_key), "tls_cert",
               "tls_cert and tls_key both set, or neither")  # fmt: skip
        for name in ("tls_cert", "tls_key"):
            value = getattr(self, name)
            _check(not value or Path(value).is_file(), name, "the path of a readable file")
        for name in ("max_body_bytes", "max_batch", "max_blob_bytes", "max_blob_chunk_bytes",
                     "rate_limit_per_minute", "token_ttl", "challenge_ttl", "web_lock_after",
                     "max_org_blob_bytes", "max_operation_blob_bytes"):  # fmt: skip
            _check(getattr(self, name) > 0, name, "a positive integer")
        _check(self.max_batch <= 10_000, "max_batch", "at most 10000")
        try:
            self.trusted_networks  # noqa: B018 -- parsed here so a bad value stops the start
        except ValueError:
            _check(False, "trusted_proxies", "comma-separated IP addresses or CIDR networks")
        for origin in self.allowed_web_origins:
            _check(re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", origin) is not None,
                   "web_origins", "comma-separated origins such as https://intranet.example "
                   "(scheme, host and port only)")  # fmt: skip
        _check(not self.metrics_token or len(self.metrics_token) >= 16, "metrics_token",
               "empty, or at least 16 characters")  # fmt: skip
        _check(self.log_level in ("debug", "info", "warning", "error"), "log_level",
               "one of debug, info, warning, error")  # fmt: skip

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """:attr:`trusted_proxies` parsed."""
        parts = (p.strip() for p in self.trusted_proxies.split(","))
        return tuple(ipaddress.ip_network(p, strict=False) for p in parts if p)

    @property
    def allowed_web_origins(self) -> frozenset[str]:
        """:attr:`web_origins` parsed."""
        return frozenset(p.strip() for p in self.web_origins.split(",") if p.strip())

    @property
    def auditors(self) -> frozenset[str]:
        """:attr:`auditor_orgs` parsed."""
        return frozenset(p.strip() for p in self.auditor_orgs.split(",") if p.strip())

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


# The schemes operators write, and the async driver each one runs on.
_DRIVERS = {
    "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg", "postgresql+psycopg": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite", "sqlite+pysqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}  # fmt: skip


def normalise_database_url(url: str) -> str | None:
    """``url`` with the async driver the server runs on, or None for an unknown scheme.

    Operators write ``postgresql://``, ``postgres://`` (Heroku-style) or ``sqlite:///path``;
    the server always talks through asyncpg or aiosqlite, so the driver is chosen here rather
    than failing later on an import of a driver that is not installed.
    """
    scheme, sep, rest = url.partition("://")
    driver = _DRIVERS.get(scheme.lower())
    return f"{driver}://{rest}" if sep and driver and rest else None


def _is_blob_store(spec: str) -> bool:
    if spec.startswith("file:"):
        return Path(spec.removeprefix("file:")).is_absolute()
    return spec == "database" or (spec.startswith("s3://") and len(spec) > len("s3://"))


def _check(ok: bool, name: str, expected: str) -> None:
    if not ok:
        raise ConfigError(f"setting {name!r}: expected {expected}")


def _coerce(name: str, kind: type, raw: Any) -> Any:
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if kind is bool and text.lower() in ("1", "true", "yes", "0", "false", "no"):
            return text.lower() in ("1", "true", "yes")
        if kind is int and text.lstrip("-").isdigit():
            return int(text)
        if kind is str:
            return text
    raise ConfigError(f"setting {name!r}: expected {kind.__name__}, got {raw!r}")


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from an optional TOML file, overridden by ``OPSEAL_*`` environment variables."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if path:
        try:
            values.update(tomllib.loads(Path(path).read_text()))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    known = {f.name: f.type for f in fields(Settings)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown settings in {path}: {', '.join(unknown)}")
    for name in known:
        if f"OPSEAL_{name.upper()}" in env:
            values[name] = env[f"OPSEAL_{name.upper()}"]
    types = {"str": str, "int": int, "bool": bool}
    coerced = {name: _coerce(name, types[str(known[name])], raw) for name, raw in values.items()}
    return Settings(**coerced)
