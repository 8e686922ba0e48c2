"""Fixtures shared by the push, migrate and auth tests (the push world's secrets and target)."""

import pytest

from tests.integration.push_world import (
    SECRET,
    SECRET_ENV,
    SOURCE_PASSWORD,
    SOURCE_PASSWORD_ENV,
    grant_mailbox,
)


@pytest.fixture
def push_secrets(monkeypatch):
    """The app secret and source password the push world's configs reference as env:."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    monkeypatch.setenv(SOURCE_PASSWORD_ENV, SOURCE_PASSWORD)


@pytest.fixture
def o365(office365_server, oauth_service):
    """The Exchange look-alike with the push world's mailbox granted to the app."""
    grant_mailbox(oauth_service, office365_server)
    return office365_server
