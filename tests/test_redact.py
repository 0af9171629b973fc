"""One rule masks a password in a URL, for the broker's and the database's messages alike."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from hpoqueue.errors import redact


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
    ("rediss://user:s3cret@host", "rediss://user:***@host"),
    ("redis://:s3c@ret@host/0", "redis://:***@host/0"),  # an unescaped @ in the password
    ("postgresql://bob:s3cret@127.0.0.1:5432/hpo", "postgresql://bob:***@127.0.0.1:5432/hpo"),
    ("not a url://bob:s3cret@x", "not a url://bob:***@x"),  # too broken to parse: masked all the same
    ("redis://host:6379/0", "redis://host:6379/0"),
    ("sqlite:////home/bob/hpo.db", "sqlite:////home/bob/hpo.db"),
])
def test_the_password_is_masked(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_a_parsed_database_url_is_masked_like_its_text() -> None:
    assert redact(make_url("postgresql+psycopg://bob:p%40ss@db:5432/hpo")) == "postgresql+psycopg://bob:***@db:5432/hpo"
