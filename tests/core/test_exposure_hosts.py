"""The exposure check sees every host a configured URL may reach: libpq's ``host``/``hostaddr``
parameters and host lists, libpq's defaults from ``PGHOST``/``PGHOSTADDR`` for what a URL leaves
out, and e-licensing's field named plain ``url``."""

from __future__ import annotations

import pytest

from tether.core import exposure
from tether.core.errors import ConfigurationError
from tether.core.settings import Settings
from tether.elicensing.settings import ElicensingSettings


@pytest.fixture(autouse=True)
def no_libpq_host_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the libpq defaults it is about (the machine's own must not decide)."""
    monkeypatch.delenv("PGHOST", raising=False)
    monkeypatch.delenv("PGHOSTADDR", raising=False)
    monkeypatch.delenv("PGSERVICE", raising=False)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql:///tether?host=db.example.com",
        "postgresql://localhost/tether?host=db.example.com",
        "host=localhost hostaddr=10.0.0.5 dbname=tether",
        "postgresql://127.0.0.1/tether?hostaddr=10.0.0.5",
        "postgresql://localhost,db.example.com/tether",
        "host=/run/postgresql,10.0.0.5 dbname=tether",
        "postgres://tether@db.internal:5432/tether",
        "host='unterminated",
    ],
)
def test_database_urls_reaching_other_machines_are_exposed(url: str) -> None:
    assert exposure.exposed_urls(Settings(database_url=url)) == ["DATABASE_URL"]
    with pytest.raises(ConfigurationError, match="DATABASE_URL is not loopback"):
        exposure.refuse_unsafe(Settings(database_url=url))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql:///tether",
        "postgresql://localhost/tether",
        "postgresql://tether@127.0.0.1:5432/tether?sslmode=disable",
        "postgresql://[::1]/tether",
        "postgresql:///tether?host=/run/postgresql",
        "postgresql://%2Frun%2Fpostgresql/tether",
        "postgresql://localhost,127.0.0.1/tether?hostaddr=127.0.0.1,::1",
        "host=localhost hostaddr=127.0.0.1 dbname=tether",
        "dbname=tether",
    ],
)
def test_local_database_urls_are_not_exposed(url: str) -> None:
    assert exposure.exposed_urls(Settings(database_url=url)) == []


def test_a_field_named_url_counts() -> None:
    assert exposure.exposed_urls(ElicensingSettings()) == []  # default: 127.0.0.1
    remote = ElicensingSettings(url="http://10.0.0.5:7002")
    assert exposure.exposed_urls(remote) == ["TETHER_ELICENSING_URL"]
    with pytest.raises(ConfigurationError, match="TETHER_ELICENSING_URL is not loopback"):
        exposure.refuse_unsafe(remote)


def test_a_remote_elicensing_url_from_the_environment_refuses_dev_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TETHER_ELICENSING_URL", "http://10.0.0.5:7002")
    with pytest.raises(ConfigurationError, match="TETHER_ELICENSING_TOKEN"):
        exposure.refuse_unsafe(Settings(), ElicensingSettings())


@pytest.mark.parametrize(
    ("variable", "value"), [("PGHOST", "db.example.com"), ("PGHOSTADDR", "10.0.0.5")]
)
@pytest.mark.parametrize(
    "url", ["dbname=tether", "postgresql:///tether", "postgresql://localhost/tether"]
)
def test_libpq_environment_defaults_count_for_what_the_url_leaves_out(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, url: str
) -> None:
    """libpq connects to ``PGHOST`` when a URL names no host, and to ``PGHOSTADDR`` whenever
    the URL sets no ``hostaddr`` (even beside a host name)."""
    monkeypatch.setenv(variable, value)
    exposed = exposure.exposed_urls(Settings(database_url=url))
    names_host = "localhost" in url
    assert exposed == ([] if names_host and variable == "PGHOST" else ["DATABASE_URL"])


def test_a_url_host_overrides_a_remote_pghost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "db.example.com")
    assert exposure.exposed_urls(Settings(database_url="postgresql://127.0.0.1/t")) == []
    monkeypatch.setenv("PGHOST", "/run/postgresql")
    assert exposure.exposed_urls(Settings(database_url="dbname=tether")) == []


@pytest.mark.parametrize("url", ["service=prod dbname=tether", "postgresql:///tether?service=prod"])
def test_a_connection_service_counts_as_another_machine(url: str) -> None:
    """libpq reads a service's hosts from pg_service.conf, which tether does not see."""
    assert exposure.exposed_urls(Settings(database_url=url)) == ["DATABASE_URL"]


def test_pgservice_counts_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSERVICE", "prod")
    assert exposure.exposed_urls(Settings(database_url="dbname=tether")) == ["DATABASE_URL"]


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("", False),
        (" ", False),
        ("0.0.0.0", False),
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
    ],
)
def test_an_empty_bind_host_listens_on_every_interface(host: str, local: bool) -> None:
    """An empty database host is a local socket, but an empty bind address is every interface."""
    assert exposure.binds_loopback(host) is local
    if not local:
        with pytest.raises(ConfigurationError, match="listening on"):
            exposure.refuse_unsafe(Settings(), bind_host=host)
