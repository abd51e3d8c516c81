"""playbooks/replicate.yml: replicate now, with an administrator's inventory."""

import os
import subprocess

import yaml

from lab import ROOT, VENV_PYTHON

from ansible_collections.mailsync.iredmail.plugins.module_utils import resource as resources

PLAYBOOK = os.path.join(ROOT, "playbooks", "replicate.yml")


def run(inventory, tmp_path, *extra):
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", str(path), PLAYBOOK]
                          + list(extra), capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)


def test_replicate_playbook_replicates_the_inventory_resources(ad, ou, store, resource_args, tag, env, tmp_path,
                                                               secrets):
    address = "pb.%s@%s" % (tag, env["MAIL_DOMAIN"])
    ad.make_user(ou, "Pb %s" % tag, upn=address)
    name, config_dir = resource_args["name"], resource_args["config_dir"]
    options = dict((k, v) for k, v in resource_args.items() if k not in ("name", "config_dir"))
    resources.store(config_dir, name, resources.validate(name, resources.with_defaults(options)))
    inventory = {"iredmail": {
        "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": VENV_PYTHON}},
        "vars": {"ad_replication_config_dir": config_dir,
                 "ad_replication_resources": [dict(resource_args, name=name),
                                              {"name": "gone-%s" % tag, "state": "absent"}]}}}

    preview = run(inventory, tmp_path, "--check", "--diff")
    assert preview.returncode == 0, preview.stdout[-3000:] + preview.stderr[-2000:]
    assert "%s (create)" % address in preview.stdout
    assert store.account(address) is None

    proc = run(inventory, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "\"msg\": \"%s: {'created': 1, " % name in proc.stdout, proc.stdout[-3000:]
    assert "gone-%s" % tag not in proc.stdout.split("TASK [Replicate each resource]")[1]
    assert store.account(address)["active"] is True

    # One resource by name; nothing left to do.
    again = run(inventory, tmp_path, "-e", "mailsync_resources=%s" % name)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "changed=0" in again.stdout
    for secret in secrets:
        assert secret not in preview.stdout + proc.stdout + again.stdout
