"""Fixtures for tests against the lab's real servers.

A missing or stopped lab fails every test loudly: these tests never skip
their way to green.
"""

import os
import uuid

import pytest

from lab import AD, STORES, LabNotRunning, load_env

from ansible_collections.mailsync.iredmail.plugins.module_utils import replicate

BACKENDS = ["mysql", "pgsql", "ldap"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def env():
    try:
        return load_env()
    except LabNotRunning as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def ad(env):
    directory = AD(env)
    yield directory
    directory.close()


@pytest.fixture
def ou(ad):
    """A fresh OU per test, so tests never see each other's AD objects."""
    dn = ad.make_ou()
    yield dn
    ad.delete_tree(dn)


@pytest.fixture(scope="session", params=BACKENDS)
def store(request, env):
    backend = STORES[request.param](env)
    # The state table is created once, with the schema login, as an
    # administrator would with ad_resource; replication then runs as vmailadmin.
    replicate.ensure_state_schema(backend.backend_options(schema=True))
    yield backend
    backend.close()


@pytest.fixture
def tag():
    """A short unique token for addresses and resource names of one test."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def config_dir(tmp_path):
    path = tmp_path / "resources"
    return str(path)


@pytest.fixture
def resource_args(env, ou, store, tag, config_dir):
    """ad_resource arguments for a resource over this test's OU and store."""
    return {
        "name": "t-%s" % tag,
        "config_dir": config_dir,
        "target_domain": env["MAIL_DOMAIN"],
        "server_uri": [env["AD_URI_LDAPS"]],
        "ca_cert": env["AD_CA_CERT"],
        "bind_dn": env["AD_BIND_DN"],
        "bind_password": env["AD_BIND_PASSWORD"],
        "base_dn": ou,
        "backend": store.backend_options(),
        # The lab's Samba serves one request at a time; a loaded CI machine
        # can hold one answer longer than the default 10 s.
        "timeout": 30,
    }


@pytest.fixture
def secrets(env, store):
    """Every secret of the lab a test's output must never contain."""
    return [env["AD_BIND_PASSWORD"], env["AD_ADMIN_PASSWORD"]] + store.secrets()


def pytest_configure(config):
    os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".collections"))
