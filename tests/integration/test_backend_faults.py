"""Backend faults in the middle of a run, on the real servers: a lost connection, deadlocks.

The connection is cut by a TCP proxy between replication and the real
server, when the run sends its second write: the first has reached the
server, so a transaction is half done when the connection goes. The
deadlocks are raised by the real server, from a trigger the test puts on
the table replication writes last, with the server's own error codes.
"""

import socket
import threading

import pytest

from ansible_collections.mailsync.iredmail.plugins.module_utils import replicate, resource as resources
from ansible_collections.mailsync.iredmail.plugins.module_utils.errors import BackendError, TransientBackendError

# LDAP protocolOp tags of the requests that write: modify, add, delete, modDN.
LDAP_WRITES = (0x66, 0x68, 0x4a, 0x6c)


def run(args, **kw):
    options = dict((k, v) for k, v in args.items() if k not in ("name", "config_dir"))
    resources.store(args["config_dir"], args["name"], resources.with_defaults(options))
    return replicate.replicate(resources.load(args["config_dir"], args["name"]), **kw)


def ldap_operation(data):
    """The protocolOp tag of the LDAPMessage `data` starts with, or None."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    offset = 2 + (data[1] & 0x7f if data[1] & 0x80 else 0)
    if len(data) < offset + 2 or data[offset] != 0x02:  # messageID INTEGER
        return None
    offset += 2 + data[offset + 1]
    return data[offset] if len(data) > offset else None


def is_write(kind, data):
    if kind == "ldap":
        return ldap_operation(data) in LDAP_WRITES
    # MySQL COM_QUERY and PostgreSQL simple queries carry the statement as text.
    return any(word in data for word in (b"INSERT INTO", b"UPDATE ", b"DELETE FROM"))


class CuttingProxy(object):
    """Forwards TCP to the real server and drops both sides at the client's `cut_at`-th write."""

    def __init__(self, kind, host, port, cut_at=2):
        self.kind, self.upstream, self.cut_at = kind, (host, port), cut_at
        self.writes = 0
        self.cut = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            thread = threading.Thread(target=self._pump, args=(client, server), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _pump(self, client, server):
        import select
        peers = {client: server, server: client}
        try:
            while True:
                for sock in select.select(list(peers), [], [], 30)[0]:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client and is_write(self.kind, data):
                        self.writes += 1
                        if self.writes >= self.cut_at:
                            self.cut.set()
                            return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            for sock in peers:
                sock.close()

    def close(self):
        self.listener.close()


def through(store, proxy):
    options = store.backend_options()
    if store.kind == "ldap":
        options["server_uri"] = "ldap://127.0.0.1:%d" % proxy.port
    else:
        options.update(host="127.0.0.1", port=proxy.port)
    return options


def upstream(store):
    if store.kind == "ldap":
        host, port = store.env["OPENLDAP_URI"].split("//")[1].split(":")
        return host, int(port)
    return store.env["%s_HOST" % store.prefix], int(store.env["%s_PORT" % store.prefix])


def test_backend_connection_lost_mid_write_writes_nothing_half_and_the_next_run_converges(
        ad, ou, store, resource_args, tag, env, secrets):
    domain = env["MAIL_DOMAIN"]
    wanted = ["cut%d.%s@%s" % (i, tag, domain) for i in range(4)]
    for i, address in enumerate(wanted):
        ad.make_user(ou, "Cut%d %s" % (i, tag), upn=address)
    proxy = CuttingProxy(store.kind, *upstream(store))
    try:
        with pytest.raises(BackendError) as err:
            run(dict(resource_args, backend=through(store, proxy)))
    finally:
        proxy.close()
    assert proxy.cut.is_set(), "the run never reached its second write"
    message = str(err.value)
    assert "writ" in message and ("lost" in message.lower() or "server" in message.lower()
                                   or "connect" in message.lower()), message
    for secret in secrets:
        assert secret not in message
    present = [a for a in wanted if store.account(a) is not None]
    if store.kind == "ldap":
        # No transaction: the first add reached the server and is whole,
        # anchored; nothing after the cut was written, nor the cursor.
        assert len(present) == 1, present
        assert [m["address"] for m in store.managed(resource_args["name"])] == present
        assert store.account(present[0])["active"] is True
    else:
        # The first statement reached the server inside the transaction;
        # the lost connection rolled it back.
        assert present == [] and store.managed(resource_args["name"]) == []
        assert store.query("SELECT resource FROM mailsync_cursor WHERE resource = %s", (resource_args["name"],)) == []

    plan = run(resource_args)
    assert plan.summary["created"] == len(wanted) - len(present)
    assert sorted(m["address"] for m in store.managed(resource_args["name"])) == wanted
    assert all(store.account(a)["active"] for a in wanted)
    if store.kind != "ldap":
        rows = store.query("SELECT address, forwarding FROM forwardings WHERE address LIKE %s",
                           ("%%.%s@%%" % tag,))
        assert sorted((r["address"], r["forwarding"]) for r in rows) == [(a, a) for a in wanted]
    assert not run(resource_args, full=True)


class DeadlockTrigger(object):
    """A trigger on the cursor table, the last thing a run writes, that makes the real server
    report a deadlock (MySQL 1213, PostgreSQL 40P01) `times` times."""

    def __init__(self, store, resource, times):
        self.store, self.name = store, "mailsync_fault_%s" % resource.replace("-", "_")
        if store.kind == "mysql":
            # A MyISAM counter: the failed transaction's rollback does not undo it.
            store.execute("CREATE TABLE %s (remaining INT NOT NULL) ENGINE=MyISAM" % self.name)
            store.execute("INSERT INTO %s VALUES (%%s)" % self.name, (times,))
            store.execute(
                "CREATE TRIGGER %s BEFORE INSERT ON mailsync_cursor FOR EACH ROW BEGIN "
                " IF NEW.resource = '%s' AND (SELECT remaining FROM %s) > 0 THEN"
                "  UPDATE %s SET remaining = remaining - 1;"
                "  SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213,"
                "   MESSAGE_TEXT = 'Deadlock found when trying to get lock; try restarting transaction';"
                " END IF; END" % (self.name, resource, self.name, self.name))
        else:
            # nextval() is never rolled back: it counts the attempts.
            store.execute("CREATE SEQUENCE %s" % self.name)
            store.execute(
                "CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN"
                " IF NEW.resource = '%s' AND nextval('%s') <= %d THEN"
                "  RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01';"
                " END IF; RETURN NEW; END $$" % (self.name, resource, self.name, times))
            store.execute("CREATE TRIGGER %s BEFORE INSERT ON mailsync_cursor FOR EACH ROW EXECUTE FUNCTION %s()"
                          % (self.name, self.name))
        self.times = times

    def fired(self):
        if self.store.kind == "mysql":
            return self.times - self.store.query("SELECT remaining FROM %s" % self.name)[0]["remaining"]
        # every attempt that reached the insert drew a number; the first `times` failed
        row = self.store.query("SELECT last_value, is_called FROM %s" % self.name)[0]
        return min(row["last_value"], self.times) if row["is_called"] else 0

    def remove(self):
        if self.store.kind == "mysql":
            self.store.execute("DROP TRIGGER IF EXISTS %s" % self.name)
            self.store.execute("DROP TABLE IF EXISTS %s" % self.name)
        else:
            self.store.execute("DROP TRIGGER IF EXISTS %s ON mailsync_cursor" % self.name)
            self.store.execute("DROP FUNCTION IF EXISTS %s()" % self.name)
            self.store.execute("DROP SEQUENCE IF EXISTS %s" % self.name)


@pytest.mark.parametrize("store", ["mysql", "pgsql"], indirect=True)  # OpenLDAP has no transactions
@pytest.mark.parametrize("times", [1, 10])
def test_a_deadlock_is_retried_and_a_persistent_one_fails_clearly(ad, ou, store, resource_args, tag, env, times):
    domain = env["MAIL_DOMAIN"]
    wanted = sorted("dl%d.%s@%s" % (i, tag, domain) for i in range(3))
    for i, address in enumerate(wanted):
        ad.make_user(ou, "Dl%d %s" % (i, tag), upn=address)
    fault = DeadlockTrigger(store, resource_args["name"], times)
    try:
        if times == 1:
            plan = run(resource_args)
            assert fault.fired() == 1
            assert plan.summary["created"] == 3
            assert sorted(m["address"] for m in store.managed(resource_args["name"])) == wanted
            rows = store.query("SELECT address FROM forwardings WHERE address LIKE %s", ("%%.%s@%%" % tag,))
            assert sorted(r["address"] for r in rows) == wanted  # the rolled back attempt left no duplicate
        else:
            with pytest.raises(TransientBackendError) as err:
                run(resource_args)
            assert fault.fired() == replicate.TRANSIENT_ATTEMPTS
            message = str(err.value)
            assert ("1213" in message or "deadlock detected" in message) and "writing the plan" in message
            assert store.managed(resource_args["name"]) == [] and all(store.account(a) is None for a in wanted)
    finally:
        fault.remove()
