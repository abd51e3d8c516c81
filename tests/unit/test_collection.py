"""The collection as Ansible sees it: documentation, argument specs, build."""

import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
ENV = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")

CONTRACT = {
    "ad_resource": ["name", "state", "config_dir", "target_domain", "server_uri", "start_tls", "validate_certs",
                    "ca_cert", "bind_dn", "bind_password", "base_dn", "user_filter", "group_filter",
                    "user_mail_attribute", "group_mail_attribute", "replicate_groups", "on_removed",
                    "max_deletes", "backend"],
    "ad_replicate": ["resource", "config_dir"],
}


def ansible_doc(module):
    proc = subprocess.run([os.path.join(BIN, "ansible-doc"), "--json", "mailsync.iredmail.%s" % module],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["mailsync.iredmail.%s" % module]


@pytest.mark.parametrize("module", sorted(CONTRACT))
def test_documentation_renders_complete(module):
    doc = ansible_doc(module)
    options = doc["doc"]["options"]
    for name in CONTRACT[module]:
        assert name in options, "%s lacks documented option %s" % (module, name)
        assert options[name]["description"], name
    assert doc["examples"].strip().startswith("- name:")
    assert doc["return"]
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"
    assert doc["doc"]["attributes"]["diff_mode"]["support"] == "full"


def test_ad_resource_documents_what_its_argument_spec_accepts():
    from ansible_collections.mailsync.iredmail.plugins.module_utils import resource
    doc = ansible_doc("ad_resource")["doc"]["options"]
    spec = dict(name={}, state={}, validate={}, **resource.config_dir_spec())
    spec.update(resource.resource_options())
    assert sorted(doc) == sorted(spec)
    assert sorted(doc["backend"]["suboptions"]) == sorted(resource.backend_options())
    assert sorted(doc["backend"]["suboptions"]["iredadmin"]["suboptions"]) == sorted(resource.iredadmin_options())
    for key, option in resource.resource_options().items():
        assert doc[key].get("default") == option.get("default"), key


def test_every_secret_is_no_log():
    from ansible_collections.mailsync.iredmail.plugins.module_utils import resource
    secrets = [("bind_password", resource.resource_options()["bind_password"])]
    secrets += [(k, v) for k, v in resource.backend_options().items() if "password" in k]
    secrets += [(k, v) for k, v in resource.iredadmin_options().items() if "password" in k]
    assert len(secrets) == 5
    assert all(option.get("no_log") is True for _, option in secrets)


def test_collection_builds(tmp_path):
    proc = subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path",
                           str(tmp_path), ROOT], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = glob.glob(str(tmp_path / "mailsync-iredmail-*.tar.gz"))
    assert len(built) == 1
    listing = subprocess.run(["tar", "tzf", built[0]], capture_output=True, text=True, check=True).stdout
    assert "plugins/modules/ad_replicate.py" in listing
    assert ".lab/" not in listing and ".venv/" not in listing and ".collections/" not in listing


class SpecSeen(Exception):
    pass


def ad_resource_argument_spec(monkeypatch):
    """The argument spec ad_resource really hands to AnsibleModule, not one rebuilt here."""
    from ansible_collections.mailsync.iredmail.plugins.modules import ad_resource
    seen = {}

    def capture(argument_spec, **kwargs):
        seen.update(argument_spec)
        raise SpecSeen()

    monkeypatch.setattr(ad_resource, "AnsibleModule", capture)
    with pytest.raises(SpecSeen):
        ad_resource.main()
    return seen


def test_ad_resource_defaults_are_the_documented_contract(monkeypatch):
    spec = ad_resource_argument_spec(monkeypatch)
    defaults = dict((key, option.get("default")) for key, option in spec.items())
    assert defaults["config_dir"] == "/etc/mailsync/resources"
    assert defaults["state"] == "present"
    assert defaults["start_tls"] is False
    assert defaults["validate_certs"] is True
    assert defaults["group_filter"] == "(objectClass=group)"
    assert defaults["user_mail_attribute"] == "userPrincipalName"
    assert defaults["group_mail_attribute"] == "mail"
    assert defaults["replicate_groups"] is True
    assert defaults["on_removed"] == "disable"
    assert spec["backend"]["options"]["database"]["default"] == "vmail"
    # SAM_NORMAL_USER_ACCOUNT: every user account, and no computer (805306369)
    # or trust account; nothing on userAccountControl, so disabled users are
    # selected too and become disabled mailboxes instead of removed ones.
    user_filter = defaults["user_filter"]
    assert "(sAMAccountType=805306368)" in user_filter
    assert "805306369" not in user_filter and "computer" not in user_filter.lower()
    assert "userAccountControl" not in user_filter and "!" not in user_filter
