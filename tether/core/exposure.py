"""Safe defaults: a process reachable from (or reaching out to) other machines needs real secrets.

``refuse_unsafe`` stops ``serve`` and ``worker`` with one clear line when they would listen on a
non-loopback address, or talk to a non-loopback database or upstream, while a secret is unset,
short, or a published development value. ``random_secrets`` gives the demo fresh ones.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

import psycopg
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from tether.core.errors import ConfigurationError

MIN_SECRET_CHARS = 16
DEV_PREFIX = "dev-"


def is_loopback(host: str | None) -> bool:
    """Loopback addresses, ``localhost`` and Unix sockets; ``0.0.0.0`` and names are not."""
    if not host or host.startswith("/"):
        return True
    if host.lower() in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def binds_loopback(host: str) -> bool:
    """A listening address reachable only from this machine: an empty one binds every
    interface, so it is not (``is_loopback`` reads an empty database host as a local socket)."""
    return bool(host.strip()) and is_loopback(host)


def _url_hosts(url: str) -> list[str]:
    """Every host a URL may reach; for PostgreSQL also libpq's ``host``/``hostaddr`` parameters
    (``?host=`` in a URI, ``hostaddr=`` in key=value) and comma-separated lists, which
    ``urlsplit`` does not see, and for one the URL leaves out, libpq's own default
    (``PGHOST``/``PGHOSTADDR``: libpq connects there). An unparsable database URL, or one naming
    a connection service (``service=``, ``PGSERVICE``), names a host that is not loopback."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme and scheme not in ("postgres", "postgresql"):
        return [urlsplit(url).hostname or ""]
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return ["unparsable"]
    defaults = _libpq_defaults()
    service = params.get("service") or defaults.get("service")
    if service:  # a pg_service.conf entry names its hosts: they cannot be told from here
        return [f"service {service}"]
    return [
        host.strip()
        for key in ("host", "hostaddr")
        for host in (str(params.get(key) or "") or defaults.get(key, "")).split(",")
    ]


def _libpq_defaults() -> dict[str, str]:
    """What libpq uses for a parameter a connection string leaves out (its environment
    variables included): read through libpq, so tether's own code reads no ``PG*`` variable."""
    return {
        opt.keyword.decode(): (opt.val or b"").decode()
        for opt in psycopg.pq.Conninfo.get_defaults()
    }


def env_name(settings: BaseSettings, field: str) -> str:
    alias = type(settings).model_fields[field].validation_alias
    if isinstance(alias, str):
        return alias
    return f"{settings.model_config.get('env_prefix', '')}{field}".upper()


def secret_fields(settings: BaseSettings) -> list[str]:
    """Names of the fields that hold secrets (``SecretStr``, optional or not)."""
    return [
        name
        for name, field in type(settings).model_fields.items()
        if "SecretStr" in str(field.annotation)
    ]


def is_weak(value: SecretStr | None) -> bool:
    """Unset, shorter than ``MIN_SECRET_CHARS`` or a published ``dev-`` value."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else ""
    return len(text) < MIN_SECRET_CHARS or text.startswith(DEV_PREFIX)


def weak_fields(settings: BaseSettings) -> list[str]:
    """Names of the secret fields whose values are weak (see ``is_weak``)."""
    return [name for name in secret_fields(settings) if is_weak(getattr(settings, name))]


def weak_secrets(settings: BaseSettings, skip: Iterable[str] = ()) -> list[str]:
    """Environment variables of secrets that are unset, short or development values."""
    return [env_name(settings, name) for name in weak_fields(settings) if name not in skip]


def is_url_field(name: str) -> bool:
    """``url`` and ``*_url`` fields name other machines (e-licensing's is plain ``url``)."""
    return name == "url" or name.endswith("_url")


def exposed_urls(settings: BaseSettings) -> list[str]:
    """Environment variables of configured URLs (``url``, ``*_url``) that leave this machine;
    a URL counts as loopback only when every host it may reach is."""
    return [
        env_name(settings, name)
        for name in type(settings).model_fields
        if is_url_field(name)
        and isinstance(url := getattr(settings, name), str)
        and not all(is_loopback(host) for host in _url_hosts(url))
    ]


def refuse_unsafe(
    *all_settings: BaseSettings, bind_host: str | None = None, skip: Iterable[str] = ()
) -> None:
    """Raise ``ConfigurationError`` when this process is exposed while a secret is weak."""
    exposed = bind_host is not None and not binds_loopback(bind_host)
    why = [f"listening on {bind_host or 'every interface'}"] if exposed else []
    for settings in all_settings:
        why += [f"{name} is not loopback" for name in exposed_urls(settings)]
    weak = [name for settings in all_settings for name in weak_secrets(settings, skip)]
    if why and weak:
        raise ConfigurationError(
            f"refusing to start ({why[0]}) with unset or development secrets: set "
            f"{', '.join(weak)} to random values of {MIN_SECRET_CHARS}+ characters"
        )


def random_secrets(settings: BaseSettings) -> dict[str, SecretStr]:
    """Fresh random values for every secret field (the demo's overrides)."""
    return {name: SecretStr(secrets.token_urlsafe(24)) for name in secret_fields(settings)}
