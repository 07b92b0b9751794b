"""Ledger URLs are shown and logged without their user, password or any secret parameter."""

import pytest

from app.processes import free_port
from bench import report
from ledger import LedgerUnavailable, open_store
from ledger.shown import redact_url

SECRET = "hunter2-secret"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://alice:" + SECRET + "@db:5432/ledger", "postgresql://***@db:5432/ledger"),
        ("postgresql://db/ledger?password=" + SECRET, "postgresql://db/ledger?password=***"),
        (
            f"postgres://db/l?sslpassword={SECRET}&sslkey=/etc/k.pem&schema=s",
            "postgres://db/l?sslpassword=***&sslkey=/etc/k.pem&schema=s",
        ),
        (
            f"postgresql:///l?host=/run/pg&PassWord={SECRET}",
            "postgresql:///l?host=/run/pg&PassWord=***",
        ),
        (
            f"postgresql://u@h1:5432,h2:5433/l?password={SECRET}",
            "postgresql://***@h1:5432,h2:5433/l?password=***",
        ),
        (f"host=db password='{SECRET} x' user=u", "host=db password=*** user=u"),
        ("sqlite:///.data/ledger.db", "sqlite:///.data/ledger.db"),
        ("postgresql://db:5432/l?schema=bank_{bank}", "postgresql://db:5432/l?schema=bank_{bank}"),
    ],
)
def test_redact_url_hides_user_info_and_secret_parameters(url: str, shown: str) -> None:
    """User info and password-like parameters become ***; hosts, paths and the schema stay."""
    assert shown == redact_url(url)


def test_a_password_in_the_query_string_is_not_in_the_connect_error() -> None:
    """`Cannot connect to PostgreSQL at ...` names the server, never `?password=`'s value."""
    url = f"postgresql://127.0.0.1:{free_port()}/db?schema=s&password={SECRET}&user=bob"
    with pytest.raises(LedgerUnavailable) as caught:
        open_store(url)
    assert "Cannot connect to PostgreSQL at" in str(caught.value)
    assert "password=***" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_the_bench_report_redacts_the_ledger_url_it_records() -> None:
    """The benchmark's recorded command shows the ledger URL with its password redacted."""
    shown = report.command_line(["--ledger-url", f"postgresql://db/t?password={SECRET}"])
    assert SECRET not in shown
    assert "postgresql://db/t?password=***" in shown


def test_the_settings_repr_leaves_ledger_urls_out() -> None:
    """A logged or printed Settings never carries a ledger URL's password."""
    from app.config import Settings

    settings = Settings.from_env(
        {
            "LEDGER_URL": "postgresql://u:hunter2@db/x?password=hunter3",
            "TRANSFER_BANKS": "north",
            "LEDGER_URL_NORTH": "postgresql://db/n?sslpassword=hunter4",
        }
    )
    shown = repr(settings)
    assert not any(secret in shown for secret in ("hunter2", "hunter3", "hunter4"))
