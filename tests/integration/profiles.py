"""Server profiles an integration test can run against.

`@on_each_server` runs a test once per profile, with the `source_server` fixture being that
profile's server: the Dovecot SourceServer, or a CyrusServer (tests/world/cyrus.py). Tests
read the differences (namespace prefix, what APPEND refuses, how bytes are served) from the
server's own attributes, never from the profile's name.
"""

import pytest

SERVER_PROFILES = ("dovecot", "cyrus")
on_each_server = pytest.mark.parametrize("source_server", SERVER_PROFILES, indirect=True)
