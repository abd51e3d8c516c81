"""The dovecot_ad_auth role's files: documented options, secrets, and the passdb chain it writes.

The chain's behaviour is tested against real Dovecot, AD and stores in
tests/integration/test_dovecot_auth.py; these checks catch a broken file early.
"""

import os
import re

import jinja2
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(ROOT, "roles", "dovecot_ad_auth")


def load(*path):
    with open(os.path.join(ROLE, *path)) as handle:
        return yaml.safe_load(handle)


def options():
    return load("meta", "argument_specs.yml")["argument_specs"]["main"]["options"]


def test_argument_specs_document_every_default():
    defaults = load("defaults", "main.yml")
    assert sorted(options()) == sorted(defaults)
    for name, option in options().items():
        if "default" in option:
            assert option["default"] == defaults[name], name


def test_every_secret_is_no_log():
    specs = options()
    secrets = [("dovecot_ad_auth_bind_password", specs["dovecot_ad_auth_bind_password"])]
    secrets += [(k, v) for k, v in specs["dovecot_ad_auth_backend"]["options"].items() if "password" in k]
    assert [name for name, _ in secrets] == ["dovecot_ad_auth_bind_password", "password", "bind_password"]
    assert all(option.get("no_log") is True for _, option in secrets)


def test_tasks_that_render_secrets_are_no_log():
    present = load("tasks", "present.yml")
    block = [t for t in present if "block" in t][0]["block"]
    templates = dict((t["ansible.builtin.template"]["src"], t) for t in block if "ansible.builtin.template" in t)
    assert len(templates) == 4
    for src, task in templates.items():
        assert task.get("no_log") is True or src == "passdb.conf.ext.j2", src
    preflight = [t for t in present if "ansible.builtin.command" in t and "stdin" in t["ansible.builtin.command"]]
    assert preflight and all(t["no_log"] is True for t in preflight)


def render(name, **variables):
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROLE, "templates")),
                                     trim_blocks=True, undefined=jinja2.StrictUndefined)
    environment.filters["bool"] = lambda value: str(value).lower() in ("true", "yes", "1", "on")  # as Ansible's
    return environment.get_template(name).render(**variables)


FILES = {"chain": "/etc/dovecot/mailsync-passdb.conf.ext", "local": "/etc/dovecot/mailsync-local.conf.ext",
         "replicated": "/etc/dovecot/mailsync-replicated.conf.ext", "ad": "/etc/dovecot/mailsync-ad.conf.ext"}


@pytest.mark.parametrize("sql", [True, False])
def test_the_chain_lets_only_ad_decide_a_replicated_password(sql):
    chain = render("passdb.conf.ext.j2", dovecot_ad_auth_sql=sql, dovecot_ad_auth_files=FILES)
    blocks = re.findall(r"(?ms)^passdb \{$(.*?)^\}$", chain)
    assert len(blocks) == 3

    def settings(block):
        return dict(line.strip().split(" = ", 1) for line in block.strip().splitlines() if " = " in line)

    local, replicated, ad = (settings(b) for b in blocks)
    assert local["args"] == FILES["local"] and replicated["args"] == FILES["replicated"] and ad["args"] == FILES["ad"]
    assert ad["driver"] == "ldap" and local["driver"] == replicated["driver"] == ("sql" if sql else "ldap")
    # 1 decides alone only on success; 2 never succeeds on its own; 3 has the last word.
    assert (local["result_success"], local["result_failure"]) == ("return-ok", "continue")
    assert replicated["result_success"] == replicated["result_failure"] == "return-fail"
    assert replicated["result_internalfail"] == "return-fail"
    assert (ad["result_success"], ad["result_failure"], ad["result_internalfail"]) == (
        "return-ok", "return-fail", "return-fail")


@pytest.mark.parametrize("kind", ["mysql", "pgsql"])
def test_sql_lookups_split_accounts_on_the_replication_state(kind):
    backend = {"type": kind, "host": "127.0.0.1", "password": 'p#w"\\'}
    local = render("sql-local.conf.ext.j2", dovecot_ad_auth_backend=backend)
    replicated = render("sql-replicated.conf.ext.j2", dovecot_ad_auth_backend=backend)
    assert "AND NOT EXISTS (SELECT 1 FROM mailsync_object WHERE mailsync_object.address = mailbox.username)" in local
    assert "SELECT mailbox.password, mailbox.allow_nets" in local
    assert "SELECT NULL AS password, 'y' AS noauthenticate" in replicated
    assert "mailsync_object.address = mailbox.username" in replicated and "NOT EXISTS" not in replicated
    quote = "`" if kind == "mysql" else '"'
    for text in (local, replicated):
        assert "mailbox.%senable%%Ls%%Lc%s = 1" % (quote, quote) in text
        for condition in ("mailbox.active = 1", "domain.backupmx = 0", "domain.active = 1"):
            assert condition in text
    connect = [line for line in local.splitlines() if line.startswith("connect = ")][0]
    if kind == "mysql":
        assert connect == 'connect = "host=127.0.0.1 port=3306 dbname=vmail user=vmail password=p#w\\"\\\\"'
    else:
        assert connect.endswith("password='p#w\"\\\\'")


def test_ldap_lookups_split_accounts_on_the_replication_marker():
    backend = {"type": "ldap", "server_uri": "ldap://127.0.0.1:389", "bind_dn": "cn=vmail,dc=example,dc=com",
               "bind_password": "secret", "base_dn": "o=domains,dc=example,dc=com"}
    local = render("ldap-local.conf.ext.j2", dovecot_ad_auth_backend=backend)
    replicated = render("ldap-replicated.conf.ext.j2", dovecot_ad_auth_backend=backend)
    assert "(!(accountSetting=mailsyncResource:*)))\"" in local and "auth_bind = yes" in local
    assert "(accountSetting=mailsyncResource:*))\"" in replicated and "auth_bind = no" in replicated
    assert "=noauthenticate=y" in replicated and "userPassword" not in replicated


def ad_lookup(**overrides):
    variables = dict(dovecot_ad_auth_server_uri=["ldap://dc1", "ldap://dc2"],
                     dovecot_ad_auth_start_tls=True, dovecot_ad_auth_ca_cert="/etc/ssl/ad-ca.pem",
                     dovecot_ad_auth_bind_dn="CN=svc,DC=corp", dovecot_ad_auth_bind_password='a "b" #c \\d',
                     dovecot_ad_auth_base_dn="OU=Mail Users,DC=corp", dovecot_ad_auth_user_filter="(objectClass=user)",
                     dovecot_ad_auth_mail_attribute="mail", dovecot_ad_auth_proxy_addresses=False)
    variables.update(overrides)
    text = render("ad.conf.ext.j2", **variables)
    return dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line and not line.startswith("#"))


def test_the_ad_lookup_binds_as_an_enabled_user_over_verified_tls():
    lines = ad_lookup()
    assert lines["uris"] == "ldap://dc1 ldap://dc2" and lines["tls"] == "yes"
    assert lines["tls_require_cert"] == "hard" and lines["auth_bind"] == "yes"
    assert lines["dnpass"] == '"a \\"b\\" #c \\\\d"'
    assert lines["base"] == '"OU=Mail Users,DC=corp"'
    assert lines["pass_filter"] == (
        '"(&(objectClass=user)(mail=%u)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"')


def test_with_proxy_addresses_the_ad_user_is_also_found_by_its_smtp_value():
    assert ad_lookup(dovecot_ad_auth_proxy_addresses=True)["pass_filter"] == (
        '"(&(objectClass=user)(|(mail=%u)(proxyAddresses=SMTP:%u))(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"')
