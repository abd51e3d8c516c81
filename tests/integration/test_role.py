"""The ad_replication role, through its molecule scenario, on this machine.

extensions/molecule/default converges the role on localhost (no container)
with a resource over this test's AD OU and the lab's MariaDB, converges it
again to prove idempotence, verifies the installed files, modes and units
(`systemd-analyze verify` and `security`), and replicates with the
installed `mailsync-replicate` command, as the timer would. The scenario's
cleanup removes what the role installed for the test, before and after.
"""

import json
import os
import subprocess
import sys

from lab import ROOT, MySQLStore

MOLECULE = os.path.join(os.path.dirname(sys.executable), "molecule")


def test_role_installs_units_idempotently_and_its_service_replicates_mysql(ad, ou, env, tag):
    address = "role.%s@%s" % (tag, env["MAIL_DOMAIN"])
    guid, _ = ad.make_user(ou, "Role %s" % tag, upn=address)
    resource = "role-%s" % tag
    run_env = dict(os.environ, MAILSYNC_LAB_ENV=json.dumps(env),
                   MAILSYNC_MOLECULE=json.dumps({"resource": resource, "base_dn": ou}),
                   NO_COLOR="1", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PY_COLORS="0",
                   PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    run_env.pop("ANSIBLE_CONFIG", None)
    proc = subprocess.run([MOLECULE, "test", "--scenario-name", "default"], cwd=ROOT, env=run_env,
                          capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    for step in ("converge", "idempotence", "verify"):
        assert "default > %s: Executed: Successful" % step in output, step
    for secret in (env["AD_BIND_PASSWORD"], env["MYSQL_VMAILADMIN_PASSWORD"], env["MYSQL_ROOT_PASSWORD"]):
        assert secret not in output

    store = MySQLStore(env)
    try:
        assert store.account(address)["active"] is True
        assert store.managed(resource) == [{"guid": guid, "address": address}]
    finally:
        store.close()
    # The scenario's cleanup removed what it installed.
    assert not os.path.exists("/etc/mailsync/resources/%s.json" % resource)
    assert not os.path.exists("/usr/local/sbin/mailsync-replicate")
