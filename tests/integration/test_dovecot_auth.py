"""Replicated accounts log in with their AD password: the dovecot_ad_auth role, end to end.

Per account store, a private Dovecot (a copy of the lab's configuration for that store,
with its own base_dir, state_dir and log, and no listeners) gets the role applied with
ansible-playbook and is started; accounts are replicated from the lab AD with
ad_replicate; then the real `doveadm auth test` answers, as for an IMAP login over TLS
(`-x secured`) or Postfix's SMTP AUTH (`service=smtp`).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid

import ldap3
import pytest

from lab import STORES, run_playbook

from ansible_collections.mailsync.iredmail.plugins.module_utils import replicate

ROLE = "mailsync.iredmail.dovecot_ad_auth"
ROLE_FILES = ("mailsync-passdb.conf.ext", "mailsync-local.conf.ext", "mailsync-replicated.conf.ext",
              "mailsync-ad.conf.ext")
# Samba's complexity rules, plus what Dovecot's configuration syntax could trip on.
BIND_PASSWORD = 'Pa55 "quoted" #1 %u \\ end'


def libldap_uri(uri):
    """OpenLDAP's libldap (Dovecot's LDAP library) checks a certificate for "localhost" against
    this machine's host name, which the lab certificate does not carry; its address it does."""
    return re.sub(r"^(ldaps?://)localhost\b", r"\g<1>127.0.0.1", uri)


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def running_cmdline(pid):
    """The command line of a live process (a zombie waiting for its reaper counts as gone), or b''."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return b""
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read()
    except (OSError, IndexError):
        return b""


# ------------------------------------------------------------------ Dovecot

class Dovecot(object):
    """A private Dovecot made from the lab's configuration for one store."""

    def __init__(self, env, kind, directory):
        self.env = env
        self.kind = kind
        self.dir = str(directory)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log = os.path.join(self.dir, "dovecot.log")
        self.run_dir = os.path.join(self.dir, "run")
        self.started = False
        lab_conf = env["DOVECOT_%s_CONF" % {"mysql": "MYSQL", "pgsql": "PGSQL", "ldap": "LDAP"}[kind]]
        lab_dir = os.path.dirname(lab_conf)
        os.makedirs(self.dir, exist_ok=True)
        with open(lab_conf) as handle:
            text = handle.read()
        lookup = re.search(r"(?ms)^passdb \{.*?^\s*args = (\S+)$", text).group(1)
        self.lookup_file = os.path.join(self.dir, os.path.basename(lookup))
        shutil.copy2(lookup, self.lookup_file)
        rewrites = [
            (r"(?m)^instance_name = .*$", "instance_name = mailsync-test-%s-%s" % (kind, uuid.uuid4().hex[:6])),
            (r"(?m)^base_dir = .*$", "base_dir = %s" % self.run_dir),
            (r"(?m)^state_dir = .*$", "state_dir = %s" % os.path.join(self.dir, "state")),
            (r"(?m)^log_path = .*$", "log_path = %s" % self.log),
            # No listeners: doveadm talks to the auth process through base_dir.
            (r"(?m)^(\s*)port = \d+$", r"\g<1>port = 0"),
        ]
        for pattern, replacement in rewrites:
            text, count = re.subn(pattern, replacement, text)
            assert count, "the lab's %s has no line matching %s" % (lab_conf, pattern)
        text = text.replace(lab_dir + "/", self.dir + "/")
        with open(self.conf, "w") as handle:
            handle.write(text)
        os.makedirs(self.run_dir)
        os.makedirs(os.path.join(self.dir, "state"))
        with open(self.conf) as handle:
            self.original = handle.read()

    def role_vars(self, **overrides):
        env = self.env
        backends = {
            "mysql": {"type": "mysql", "host": env["MYSQL_HOST"], "port": int(env["MYSQL_PORT"]),
                      "database": env["MYSQL_DATABASE"], "user": env["MYSQL_VMAIL_USER"],
                      "password": env["MYSQL_VMAIL_PASSWORD"]},
            "pgsql": {"type": "pgsql", "host": env["PGSQL_HOST"], "port": int(env["PGSQL_PORT"]),
                      "database": env["PGSQL_DATABASE"], "user": env["PGSQL_VMAIL_USER"],
                      "password": env["PGSQL_VMAIL_PASSWORD"]},
            "ldap": {"type": "ldap", "server_uri": env["OPENLDAP_URI"], "bind_dn": env["OPENLDAP_VMAIL_DN"],
                     "bind_password": env["OPENLDAP_VMAIL_PASSWORD"], "base_dn": env["OPENLDAP_BASE_DN"]},
        }
        values = {
            "dovecot_ad_auth_config_dir": self.dir,
            "dovecot_ad_auth_backend_config": self.lookup_file,
            "dovecot_ad_auth_server_uri": [libldap_uri(env["AD_URI_LDAPS"])],
            "dovecot_ad_auth_ca_cert": env["AD_CA_CERT"],
            "dovecot_ad_auth_bind_dn": env["AD_BIND_DN"],
            "dovecot_ad_auth_bind_password": env["AD_BIND_PASSWORD"],
            "dovecot_ad_auth_base_dn": env["AD_BASE_DN"],
            "dovecot_ad_auth_backend": backends[self.kind],
        }
        values.update(overrides)
        return values

    def apply(self, stdout_callback="results_json", extra_args=(), **overrides):
        return run_playbook([{"name": "apply", "ansible.builtin.include_role": {"name": ROLE},
                              "vars": self.role_vars(**overrides)}],
                            stdout_callback=stdout_callback, extra_args=extra_args)

    def start(self):
        self.started = True
        # Dovecot daemonises: its output goes to a file, or it would hold a pipe open.
        with open(os.path.join(self.dir, "start.log"), "ab") as log:
            proc = subprocess.run(["dovecot", "-c", self.conf], stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=log, timeout=60)
        assert proc.returncode == 0, "dovecot did not start: %s" % self.log_tail()
        deadline = time.time() + 15
        while self.master_pid() is None:
            assert time.time() < deadline, "dovecot wrote no master.pid: %s" % self.log_tail()
            time.sleep(0.05)
        # As the lab does: without this socket, Dovecot's auth penalty (seconds per failed
        # login) is off; the tests fail logins on purpose.
        penalty = os.path.join(self.run_dir, "anvil-auth-penalty")
        if os.path.exists(penalty):
            os.unlink(penalty)

    def master_pid(self):
        """The PID of this instance's master, if it runs (its pid file and its command line agree)."""
        try:
            with open(os.path.join(self.run_dir, "master.pid")) as handle:
                pid = int(handle.read().strip())
            return pid if self.conf.encode() in running_cmdline(pid) else None
        except (OSError, ValueError):
            return None

    def stop(self):
        """Stop the master this test started, by its PID, and wait for it."""
        pid = self.master_pid() if self.started else None
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.time() + 30
        while running_cmdline(pid) and time.time() < deadline:
            time.sleep(0.05)
        assert not running_cmdline(pid), "dovecot (pid %d) did not stop" % pid

    def auth(self, user, password, service="imap", rip=None):
        """(accepted, doveadm's answer) for a login over TLS."""
        cmd = ["doveadm", "-c", self.conf, "auth", "test", "-x", "service=%s" % service, "-x", "secured"]
        if rip:
            cmd += ["-x", "rip=%s" % rip]
        proc = subprocess.run(cmd + [user, password], capture_output=True, text=True, timeout=60)
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()

    def login(self, user, password, service="imap"):
        """A whole login as imap-login makes it: the passdb, then iRedMail's userdb. Its fields, or None."""
        proc = subprocess.run(["doveadm", "-c", self.conf, "auth", "login", "-x", "service=%s" % service,
                               "-x", "secured", user, password], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            return None
        return dict(line.strip().split("=", 1) for line in proc.stdout.splitlines() if "=" in line)

    def reload(self):
        """Reload, and return only once the new auth process answers.

        The master handles the reload after doveadm returns, and for a moment has no auth-client
        socket: a login asked then fails for want of a socket, which would look like a refusal.
        """
        offset = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        subprocess.run(["doveadm", "-c", self.conf, "reload"], check=True, capture_output=True, timeout=60)
        deadline = time.time() + 15
        while "SIGHUP received" not in self.log_since(offset):
            assert time.time() < deadline, "dovecot did not reload: %s" % self.log_tail()
            time.sleep(0.05)
        while not self.auth_answers():
            assert time.time() < deadline, "dovecot's auth service did not come back: %s" % self.log_tail()
            time.sleep(0.05)

    def auth_answers(self):
        """Whether the auth service answers at all (the answer itself does not matter)."""
        answer = self.auth("nobody-%d@invalid" % os.getpid(), "x")[1]
        return "auth-client" not in answer and "connect(" not in answer

    def log_since(self, offset):
        if not os.path.exists(self.log):
            return ""
        with open(self.log, errors="replace") as handle:
            handle.seek(offset)
            return handle.read()

    def assert_login(self, user, password, expected, retry=False, **kwargs):
        """Assert doveadm's answer; with retry, allow a just reloaded Dovecot a few seconds."""
        deadline = time.time() + (10 if retry else 0)
        accepted, answer = self.auth(user, password, **kwargs)
        while accepted is not expected and time.time() < deadline:
            time.sleep(0.2)
            accepted, answer = self.auth(user, password, **kwargs)
        assert accepted is expected, "%s %s with %r (%s): %s\n%s" % (
            "refused" if expected else "accepted", user, password, kwargs, answer, self.log_tail())
        return answer

    def log_tail(self, lines=15):
        if not os.path.exists(self.log):
            return ""
        with open(self.log, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])


def assert_ok(run):
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def role_changed(run):
    return sorted(name for name, result in run.results.items() if result.get("changed"))


def replicate_now(args):
    run = run_playbook([
        {"name": "declare", "mailsync.iredmail.ad_resource": args},
        {"name": "replicate", "mailsync.iredmail.ad_replicate": {"resource": args["name"],
                                                                 "config_dir": args["config_dir"]}},
    ])
    assert_ok(run)
    return run.task("replicate")


def set_ad_password(ad, dn, password):
    ad.conn.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [('"%s"' % password).encode("utf-16-le")])]})


# --------------------------------------------------- the local account's say

def ldap_modify(store, address, changes):
    import ldap
    ops = {"add": ldap.MOD_ADD, "delete": ldap.MOD_DELETE, "replace": ldap.MOD_REPLACE}
    dn = store.entry(address)["dn"][0]
    store.conn.modify_s(dn, [(ops[op], attr, [v.encode() for v in values] if values else None)
                             for op, attr, values in changes])


def set_account(store, address, active=True):
    if store.kind == "ldap":
        ldap_modify(store, address, [("replace", "accountStatus", ["active" if active else "disabled"])])
    else:
        store.execute("UPDATE mailbox SET active = %s WHERE username = %s", (1 if active else 0, address))


def set_service(store, address, service, enabled):
    if store.kind == "ldap":
        ldap_modify(store, address, [("add" if enabled else "delete", "enabledService", [service])])
    else:
        store.execute("UPDATE mailbox SET enable%s = %%s WHERE username = %%s" % service, (int(enabled), address))


def set_domain_disabled(store, address, env, disabled):
    """The account's domain disabled: iRedAdmin marks LDAP entries domainStatus: disabled;
    on SQL the account is moved to the lab's inactive domain (the lab's own domain stays up)."""
    if store.kind == "ldap":
        ldap_modify(store, address, [("add" if disabled else "delete", "domainStatus", ["disabled"])])
    else:
        domain = env["MAIL_DOMAIN_DISABLED"] if disabled else env["MAIL_DOMAIN"]
        store.execute("UPDATE mailbox SET domain = %s WHERE username = %s", (domain, address))


def set_allow_nets(store, address, nets):
    if store.kind == "ldap":
        ldap_modify(store, address, [("replace", "allowNets", [nets] if nets else [])])
    else:
        store.execute("UPDATE mailbox SET allow_nets = %s WHERE username = %s", (nets, address))


def set_local_password_hash(store, address, password_hash):
    if store.kind == "ldap":
        ldap_modify(store, address, [("replace", "userPassword", [password_hash])])
    else:
        store.execute("UPDATE mailbox SET password = %s WHERE username = %s", (password_hash, address))


# ----------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def dovecot_bind(ad):
    """An AD account for Dovecot whose password Dovecot's configuration syntax could trip on."""
    ou = ad.make_ou()
    _, dn = ad.make_user(ou, "mailsync imap auth", password=BIND_PASSWORD)
    yield dn
    ad.delete_tree(ou)


@pytest.fixture(scope="module")
def dovecot_instance(env, store, dovecot_bind, tmp_path_factory):
    """The role applied to a private Dovecot for this store, which then runs."""
    instance = Dovecot(env, store.kind, tmp_path_factory.mktemp("dovecot-%s" % store.kind))
    instance.overrides = {"dovecot_ad_auth_bind_dn": dovecot_bind, "dovecot_ad_auth_bind_password": BIND_PASSWORD}
    secrets = [BIND_PASSWORD, env["AD_BIND_PASSWORD"]] + store.secrets() + [
        env[k] for k in ("MYSQL_VMAIL_PASSWORD", "PGSQL_VMAIL_PASSWORD", "OPENLDAP_VMAIL_PASSWORD")]
    # As an administrator runs it: nothing secret in what Ansible shows, even with -vvv --diff.
    # Dovecot is not running yet: the reload handler lets it be.
    shown = instance.apply(stdout_callback="default", extra_args=["--diff", "-vvv"], **instance.overrides)
    assert shown.returncode == 0, shown.stdout[-4000:] + shown.stderr[-2000:]
    for secret in secrets:
        assert secret not in shown.stdout and secret not in shown.stderr
    for name in ROLE_FILES[1:]:  # they hold passwords; the chain itself does not
        path = os.path.join(instance.dir, name)
        assert os.stat(path).st_mode & 0o007 == 0, "%s is readable by everyone" % path
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def dovecot(dovecot_instance):
    """The store's private Dovecot, with the role applied (again, if a test removed it)."""
    with open(dovecot_instance.conf) as handle:
        if "BEGIN mailsync.iredmail.dovecot_ad_auth" not in handle.read():
            assert_ok(dovecot_instance.apply(**dovecot_instance.overrides))
    return dovecot_instance


# -------------------------------------------------------------------- tests

def test_replicated_user_logs_in_with_the_ad_password(dovecot, ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    _, jane_dn = ad.make_user(ou, "Jane %s" % tag, upn="Jane.%s@%s" % (tag, domain.upper()), password="Jane-AD-pw-1")
    assert replicate_now(resource_args)["summary"]["created"] == 1
    jane = "jane.%s@%s" % (tag, domain)

    dovecot.assert_login(jane, "Jane-AD-pw-1", True)
    dovecot.assert_login(jane, "Jane-AD-pw-1", True, service="smtp")  # Postfix SMTP AUTH asks this way
    # The whole login: then iRedMail's userdb gives the mailbox.
    fields = dovecot.login(jane, "Jane-AD-pw-1")
    assert fields is not None and fields["home"].rstrip("/") == store.account(jane)["home"], fields
    assert dovecot.login(jane, "Jane-AD-pw-2") is None
    dovecot.assert_login(jane, "Jane-AD-pw-1", True, service="pop3")
    dovecot.assert_login(jane, "Jane-AD-pw-2", False)
    dovecot.assert_login(jane, "Jane-AD-pw-2", False, service="smtp")
    dovecot.assert_login(jane, "", False)

    # AD is the authority at every login: a new AD password works at once, no replication needed.
    # (Samba, unlike Windows, still accepts the previous one for its "old password allowed
    # period", 60 minutes by default, so that one is not tried here.)
    set_ad_password(ad, jane_dn, "Jane-AD-pw-3")
    dovecot.assert_login(jane, "Jane-AD-pw-3", True)

    # A replicated account never logs in with a local password, even one whose hash is known.
    postmaster_hash = store.account("postmaster@%s" % domain)["password"]
    set_local_password_hash(store, jane, postmaster_hash)
    dovecot.assert_login(jane, env["POSTMASTER_PASSWORD"], False)
    dovecot.assert_login(jane, "Jane-AD-pw-3", True)


def test_a_user_whose_mailbox_is_its_smtp_proxy_address_logs_in_with_it(dovecot, ad, ou, store, resource_args, tag,
                                                                        env):
    domain = env["MAIL_DOMAIN"]
    upn, primary = "gil.%s@%s" % (tag, domain), "gil.smith.%s@%s" % (tag, domain)
    ad.make_user(ou, "Gil %s" % tag, upn=upn, password="Gil-AD-pw-1", proxyAddresses=["SMTP:" + primary.upper()])
    assert replicate_now(resource_args)["summary"]["created"] == 1
    assert store.account(primary) is not None and store.account(upn) is None

    dovecot.assert_login(primary, "Gil-AD-pw-1", True)
    dovecot.assert_login(primary, "Gil-AD-pw-1", True, service="smtp")
    dovecot.assert_login(primary, "Gil-AD-pw-2", False)
    # The UPN address is an extra address. iRedMail's SQL passdb knows mailboxes only; its
    # OpenLDAP passdb also takes a shadowAddress and logs in as the entry's mail.
    dovecot.assert_login(upn, "Gil-AD-pw-1", store.kind == "ldap")

    # Another AD user listing the address among its proxyAddresses (AD matches smtp: and
    # SMTP: alike) makes two AD users match: Dovecot binds as neither.
    ad.make_user(ou, "Hub %s" % tag, upn="hub.%s@%s" % (tag, domain), password="Hub-AD-pw-1",
                 proxyAddresses=["smtp:" + primary])
    dovecot.assert_login(primary, "Hub-AD-pw-1", False)
    dovecot.assert_login(primary, "Gil-AD-pw-1", False)


def test_a_user_disabled_in_ad_cannot_log_in(dovecot, ad, ou, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    _, bob_dn = ad.make_user(ou, "Bob %s" % tag, upn="bob.%s@%s" % (tag, domain), password="Bob-AD-pw-1")
    ad.make_user(ou, "Carol %s" % tag, upn="carol.%s@%s" % (tag, domain), password="Carol-AD-pw-1", disabled=True)
    assert replicate_now(resource_args)["summary"]["created"] == 2
    bob, carol = "bob.%s@%s" % (tag, domain), "carol.%s@%s" % (tag, domain)
    dovecot.assert_login(bob, "Bob-AD-pw-1", True)

    # Disabled in AD after the last replication: AD refuses, the local account is still active.
    ad.set_disabled(bob_dn, True)
    dovecot.assert_login(bob, "Bob-AD-pw-1", False)
    dovecot.assert_login(bob, "Bob-AD-pw-1", False, service="smtp")
    ad.set_disabled(bob_dn, False)
    dovecot.assert_login(bob, "Bob-AD-pw-1", True)

    # Disabled before: replicated as a disabled account, refused either way.
    dovecot.assert_login(carol, "Carol-AD-pw-1", False)


def test_the_local_account_decides_whether_login_is_allowed(dovecot, ad, ou, store, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    ad.make_user(ou, "Dana %s" % tag, upn="dana.%s@%s" % (tag, domain), password="Dana-AD-pw-1")
    replicate_now(resource_args)
    dana = "dana.%s@%s" % (tag, domain)
    dovecot.assert_login(dana, "Dana-AD-pw-1", True)

    set_account(store, dana, active=False)
    dovecot.assert_login(dana, "Dana-AD-pw-1", False)
    set_account(store, dana, active=True)
    dovecot.assert_login(dana, "Dana-AD-pw-1", True)

    # The service: IMAP over TLS off, SMTP AUTH still on.
    set_service(store, dana, "imapsecured", False)
    dovecot.assert_login(dana, "Dana-AD-pw-1", False)
    dovecot.assert_login(dana, "Dana-AD-pw-1", True, service="smtp")
    set_service(store, dana, "imapsecured", True)
    set_service(store, dana, "smtpsecured", False)
    dovecot.assert_login(dana, "Dana-AD-pw-1", False, service="smtp")
    dovecot.assert_login(dana, "Dana-AD-pw-1", True)
    set_service(store, dana, "smtpsecured", True)

    set_domain_disabled(store, dana, env, True)
    dovecot.assert_login(dana, "Dana-AD-pw-1", False)
    set_domain_disabled(store, dana, env, False)

    # iRedMail's per-account login networks apply as well.
    set_allow_nets(store, dana, "192.0.2.0/24")
    dovecot.assert_login(dana, "Dana-AD-pw-1", False, rip="198.51.100.7")
    dovecot.assert_login(dana, "Dana-AD-pw-1", True, rip="192.0.2.7")
    dovecot.assert_login(dana, "Dana-AD-pw-2", False, rip="192.0.2.7")
    set_allow_nets(store, dana, None)
    dovecot.assert_login(dana, "Dana-AD-pw-1", True, rip="198.51.100.7")


def test_accounts_replication_did_not_create_keep_their_local_password(dovecot, ad, ou, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    postmaster = "postmaster@%s" % domain
    dovecot.assert_login(postmaster, env["POSTMASTER_PASSWORD"], True)
    dovecot.assert_login(postmaster, env["POSTMASTER_PASSWORD"], True, service="smtp")
    dovecot.assert_login(postmaster, env["POSTMASTER_PASSWORD"] + "x", False)
    dovecot.assert_login("postmaster@%s" % env["MAIL_DOMAIN_DISABLED"], env["POSTMASTER_PASSWORD"], False)
    dovecot.assert_login("nobody.%s@%s" % (tag, domain), "whatever-1", False)

    # An AD user with the same address is a conflict replication skips; its AD password opens nothing.
    ad.make_user(ou, "Impostor %s" % tag, upn=postmaster, password="Impostor-pw-1")
    assert replicate_now(resource_args)["skipped_objects"][0]["address"] == postmaster
    dovecot.assert_login(postmaster, "Impostor-pw-1", False)
    dovecot.assert_login(postmaster, env["POSTMASTER_PASSWORD"], True)


def test_ad_unreachable_fails_closed(dovecot, ad, ou, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    ad.make_user(ou, "Erin %s" % tag, upn="erin.%s@%s" % (tag, domain), password="Erin-AD-pw-1")
    replicate_now(resource_args)
    erin, postmaster = "erin.%s@%s" % (tag, domain), "postmaster@%s" % domain
    dovecot.assert_login(erin, "Erin-AD-pw-1", True)

    # The domain controller's URI pointed at a closed loopback port, as if AD were down.
    path = os.path.join(dovecot.dir, "mailsync-ad.conf.ext")
    with open(path) as handle:
        written = handle.read()
    with open(path, "w") as handle:
        handle.write(re.sub(r"(?m)^uris = .*$", "uris = ldaps://127.0.0.1:%d" % closed_port(), written))
    try:
        dovecot.reload()
        answer = dovecot.assert_login(erin, "Erin-AD-pw-1", False, retry=True)
        assert "temp_fail" in answer, answer  # a temporary failure, not a wrong password
        dovecot.assert_login(erin, "Erin-AD-pw-1", False, service="smtp")
        # Accounts replication did not create do not depend on AD.
        dovecot.assert_login(postmaster, env["POSTMASTER_PASSWORD"], True)
    finally:
        with open(path, "w") as handle:
            handle.write(written)
        dovecot.reload()
    dovecot.assert_login(erin, "Erin-AD-pw-1", True, retry=True)


def test_absent_restores_the_backend_passdb(dovecot, ad, ou, resource_args, tag, env):
    domain = env["MAIL_DOMAIN"]
    ad.make_user(ou, "Finn %s" % tag, upn="finn.%s@%s" % (tag, domain), password="Finn-AD-pw-1")
    replicate_now(resource_args)
    finn, postmaster = "finn.%s@%s" % (tag, domain), "postmaster@%s" % domain
    dovecot.assert_login(finn, "Finn-AD-pw-1", True)

    run = dovecot.apply(dovecot_ad_auth_state="absent")
    assert_ok(run)
    # iRedMail's own passdb is back, byte for byte, and Dovecot was reloaded.
    assert open(dovecot.conf).read() == dovecot.original
    assert not any(os.path.exists(os.path.join(dovecot.dir, name)) for name in ROLE_FILES)
    assert any("Reload Dovecot" in name and result.get("changed") for name, result in run.results.items())
    dovecot.assert_login(finn, "Finn-AD-pw-1", False, retry=True)  # the unusable local hash again
    dovecot.assert_login(postmaster, env["POSTMASTER_PASSWORD"], True)


# ------------------------------------------- AD-side options, on one store

@pytest.fixture
def mysql_store(env):
    store = STORES["mysql"](env)
    replicate.ensure_state_schema(store.backend_options(schema=True))
    yield store
    store.close()


def test_starttls_another_mail_attribute_and_a_second_run(ad, ou, mysql_store, tag, env, tmp_path):
    domain = env["MAIL_DOMAIN"]
    ad.make_user(ou, "Kim %s" % tag, upn="kim.%s@corp.example.com" % tag, mail="Kim.%s@%s" % (tag, domain),
                 password="Kim-AD-pw-1")
    replicate_now({
        "name": "t-%s" % tag, "config_dir": str(tmp_path / "resources"), "target_domain": domain,
        "server_uri": [env["AD_URI_LDAP"]], "start_tls": True, "ca_cert": env["AD_CA_CERT"],
        "bind_dn": env["AD_BIND_DN"], "bind_password": env["AD_BIND_PASSWORD"], "base_dn": ou,
        "user_mail_attribute": "mail", "backend": mysql_store.backend_options()})
    kim = "kim.%s@%s" % (tag, domain)
    assert mysql_store.account(kim) is not None

    instance = Dovecot(env, "mysql", tmp_path / "dovecot")
    options = dict(dovecot_ad_auth_server_uri=[libldap_uri(env["AD_URI_LDAP"])], dovecot_ad_auth_start_tls=True,
                   dovecot_ad_auth_mail_attribute="mail", dovecot_ad_auth_base_dn=ou)
    assert_ok(instance.apply(**options))
    with open(os.path.join(instance.dir, "mailsync-ad.conf.ext")) as handle:
        assert "\ntls = yes\n" in handle.read()
    try:
        instance.start()
        instance.assert_login(kim, "Kim-AD-pw-1", True)
        instance.assert_login(kim, "Kim-AD-pw-2", False)
        # The same settings again: nothing changes, Dovecot is not reloaded.
        again = instance.apply(**options)
        assert_ok(again)
        assert role_changed(again) == []
    finally:
        instance.stop()


def test_nothing_is_written_in_check_mode_or_when_refused(env, tmp_path):
    instance = Dovecot(env, "mysql", tmp_path)

    # --check --diff: the changes are reported (the main configuration's diff shown), nothing is written.
    run = instance.apply(stdout_callback="default", extra_args=["--check", "--diff"])
    assert run.returncode == 0, run.stdout[-4000:]
    assert "+!include %s/mailsync-passdb.conf.ext" % instance.dir in run.stdout
    assert env["MYSQL_VMAIL_PASSWORD"] not in run.stdout and env["AD_BIND_PASSWORD"] not in run.stdout
    assert open(instance.conf).read() == instance.original
    assert not any(os.path.exists(os.path.join(instance.dir, name)) for name in ROLE_FILES)

    def refused(expected, **options):
        run = instance.apply(**options)
        assert run.returncode != 0
        failure = [r for r in run.results.values() if r.get("failed")][0]
        assert expected in failure["msg"], failure
        assert open(instance.conf).read() == instance.original
        assert not any(os.path.exists(os.path.join(instance.dir, name)) for name in ROLE_FILES)
        return failure["msg"]

    port = closed_port()
    message = refused("cannot connect to 127.0.0.1 port %d" % port,
                      dovecot_ad_auth_server_uri=["ldaps://127.0.0.1:%d" % port])
    assert "Nothing was changed" in message
    refused("certificate was not verified", dovecot_ad_auth_ca_cert=env["AD_WRONG_CA_CERT"])
    refused("ldaps://", dovecot_ad_auth_server_uri=[libldap_uri(env["AD_URI_LDAP"])])  # no TLS at all
    refused("Access denied", dovecot_ad_auth_backend=dict(instance.role_vars()["dovecot_ad_auth_backend"],
                                                          password="wrong"))
