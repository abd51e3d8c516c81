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

import yaml

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


def test_the_role_stops_on_a_resource_it_cannot_declare_and_shows_no_secret(tmp_path):
    """No lab needed: a resource whose domain controller cannot be reached, validated, in temporary paths."""
    paths = dict((key, str(tmp_path / key)) for key in ("res", "rep", "met", "lib", "units"))
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "name": "Apply the role",
        "ansible.builtin.include_role": {"name": "mailsync.iredmail.ad_replication"},
        "vars": {
            "ad_replication_install_packages": False,
            "ad_replication_config_dir": paths["res"], "ad_replication_report_dir": paths["rep"],
            "ad_replication_metrics_dir": paths["met"], "ad_replication_lib_dir": paths["lib"],
            "ad_replication_unit_dir": paths["units"],
            "ad_replication_command": str(tmp_path / "mailsync-replicate"),
            "ad_replication_resources": [
                {"name": "good", "state": "absent", "interval": "7min"},
                {"name": "bad", "target_domain": "example.com", "server_uri": ["ldaps://127.0.0.1:1"],
                 "bind_dn": "CN=x", "bind_password": "Secret-Bind-1", "base_dn": "DC=x", "validate": True,
                 "timeout": 2, "backend": {"type": "mysql", "login_user": "u", "login_password": "Secret-Db-2"}},
            ]}}]}]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-v", "-i", "localhost,",
                           "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable, str(playbook)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "resource bad: connection test of resource bad failed: " in output
    assert "ldaps://127.0.0.1:1: cannot connect" in output
    assert "Secret-Bind-1" not in output and "Secret-Db-2" not in output
    assert not os.path.exists(os.path.join(paths["res"], "bad.json"))
    # What came before the resources is in place: code, command, units.
    assert os.path.isfile(os.path.join(paths["lib"], "ansible_collections", "mailsync", "iredmail", "plugins",
                                       "module_utils", "backends", "mysql.py"))
    assert os.access(str(tmp_path / "mailsync-replicate"), os.X_OK)
    assert sorted(os.listdir(paths["units"])) == ["mailsync-replicate@.service", "mailsync-replicate@.timer"]
