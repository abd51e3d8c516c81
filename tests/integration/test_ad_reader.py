"""The AD reader and connection against the lab's Samba AD DC."""

import inspect

import pytest

from ansible_collections.mailsync.iredmail.plugins.module_utils import ad_connection, ad_reader
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import ConfigError, DirectoryError


def bind(env, uri=None, **kw):
    kw.setdefault("ca_cert", env["AD_CA_CERT"])
    return ad_connection.connect([uri or env["AD_URI_LDAPS"]], env["AD_BIND_DN"],
                                 kw.pop("password", env["AD_BIND_PASSWORD"]), **kw)


def test_reads_every_user_in_pages_with_guid_and_disabled_bit(env, ad, ou):
    made = dict(ad.make_user(ou, "P%02d" % i, upn="p%02d@%s" % (i, env["MAIL_DOMAIN"]), disabled=(i % 3 == 0))
                for i in range(7))
    conn = bind(env)
    sent = []
    search = conn.search

    def recording_search(*args, **kwargs):
        sent.append(inspect.signature(search).bind(*args, **kwargs).arguments.get("paged_size"))
        return search(*args, **kwargs)

    conn.search = recording_search
    users = list(ad_reader.read_users(conn, ou, ad_reader.DEFAULT_USER_FILTER, "userPrincipalName",
                                      ["displayName"], page_size=3))
    # 7 users in pages of 3: three search requests, each with the paged
    # results control, because Windows AD would cut an unpaged search at 1000.
    assert sent == [3, 3, 3]
    assert sorted(u.guid for u in users) == sorted(made)
    by_upn = dict((u.mail, u) for u in users)
    assert [by_upn["p%02d@%s" % (i, env["MAIL_DOMAIN"])].disabled for i in range(7)] == \
        [i % 3 == 0 for i in range(7)]
    conn.unbind()


def test_guid_matches_what_ad_reports(env, ad, ou):
    guid, dn = ad.make_user(ou, "Guid Check", upn="guid.check@%s" % env["MAIL_DOMAIN"])
    conn = bind(env)
    conn.search("<GUID=%s>" % guid, "(objectClass=*)", attributes=["distinguishedName"])
    assert conn.entries[0].entry_dn.lower() == dn.lower()
    users = list(ad_reader.read_users(conn, ou, ad_reader.DEFAULT_USER_FILTER, "userPrincipalName"))
    assert [u.guid for u in users] == [guid]
    conn.unbind()


def test_default_filter_excludes_computers(env, ad, ou):
    ad.conn.add("CN=WS01,%s" % ou, ["top", "person", "organizationalPerson", "user", "computer"],
                {"sAMAccountName": "WS01$", "userAccountControl": 4096})
    ad.make_user(ou, "Human", upn="human@%s" % env["MAIL_DOMAIN"])
    conn = bind(env)
    users = list(ad_reader.read_users(conn, ou, ad_reader.DEFAULT_USER_FILTER, "userPrincipalName"))
    assert [u.dn.split(",")[0] for u in users] == ["CN=Human"]
    conn.unbind()


def test_starttls_with_verification(env):
    conn = bind(env, env["AD_URI_LDAP"], start_tls=True)
    assert conn.bound and conn.tls_started
    conn.unbind()


def test_certificate_from_another_ca_fails_verification(env):
    with pytest.raises(DirectoryError) as err:
        bind(env, ca_cert=env["AD_WRONG_CA_CERT"])
    assert "certificate verification failed" in str(err.value)
    with pytest.raises(DirectoryError) as err:
        bind(env, env["AD_URI_LDAP"], start_tls=True, ca_cert=env["AD_WRONG_CA_CERT"])
    assert "certificate verification failed" in str(err.value)


def test_plain_ldap_bind_is_refused_unless_allowed(env):
    with pytest.raises(ConfigError) as err:
        bind(env, env["AD_URI_LDAP"])
    assert "refusing a simple bind over plain" in str(err.value)
    conn = bind(env, env["AD_URI_LDAP"], allow_insecure=True)
    assert conn.bound
    conn.unbind()


def test_wrong_password_is_named_as_such(env):
    with pytest.raises(DirectoryError) as err:
        bind(env, password="not-the-password")
    message = str(err.value)
    assert "invalid credentials" in message and env["AD_BIND_DN"] in message
    assert "not-the-password" not in message


def test_unreachable_dc_then_working_dc(env):
    conn = ad_connection.connect(["ldaps://127.0.0.1:1", env["AD_URI_LDAPS"]], env["AD_BIND_DN"],
                                 env["AD_BIND_PASSWORD"], ca_cert=env["AD_CA_CERT"], timeout=3)
    assert conn.bound
    conn.unbind()
    with pytest.raises(DirectoryError) as err:
        ad_connection.connect(["ldaps://127.0.0.1:1"], env["AD_BIND_DN"], env["AD_BIND_PASSWORD"],
                              ca_cert=env["AD_CA_CERT"], timeout=3)
    assert "ldaps://127.0.0.1:1: cannot connect" in str(err.value)


def test_missing_base_dn_is_an_error_not_an_empty_directory(env):
    conn = bind(env)
    with pytest.raises(DirectoryError) as err:
        list(ad_reader.read_users(conn, "OU=Nope,%s" % env["AD_BASE_DN"], ad_reader.DEFAULT_USER_FILTER,
                                  "userPrincipalName"))
    assert "does not exist" in str(err.value)
    conn.unbind()
