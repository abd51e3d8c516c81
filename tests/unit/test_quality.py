"""Quality gates: ansible-lint's production profile, ansible-test sanity, changelog fragments.

ansible-test needs the collection under .../ansible_collections/mailsync/iredmail:
the files git knows (tracked, or new and not ignored) are copied into such a
tree. Its sanity tests install their requirements into virtual environments
kept in .venv/ansible-test-home (created once, reused after), each started
by the stand-in for get-pip.py below: pip's own bootstrap script lives on a
host this machine cannot reach, while ensurepip and the package index work.
"""

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
TEST_HOME = os.path.join(ROOT, ".venv", "ansible-test-home")

GET_PIP = '''"""Stand-in for get-pip.py (written by tests/unit/test_quality.py): ensurepip, then pip from the index."""
import ensurepip
import os
import subprocess
import sys

env = dict(os.environ)  # ensurepip sets PIP_CONFIG_FILE=/dev/null for itself only
ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args, env=env))
'''


def run(cmd, cwd=ROOT, timeout=600, env=None):
    environment = dict(os.environ, NO_COLOR="1", ANSIBLE_NOCOLOR="1", PATH=BIN + os.pathsep + os.environ["PATH"])
    environment.update(env or {})
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment)


def test_ansible_lint_production_profile_is_clean():
    proc = run([os.path.join(BIN, "ansible-lint"), "--profile", "production", "--nocolor", "--format", "pep8"])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    # offline (.ansible-lint): nothing installed into the checkout
    assert not os.path.exists(os.path.join(ROOT, ".ansible", "collections"))


def collection_copy(tmp_path):
    dest = tmp_path / "ansible_collections" / "mailsync" / "iredmail"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in files:
        source = os.path.join(ROOT, name)
        if not name or name.startswith(".test-play-") or not os.path.isfile(source):
            continue  # deleted in the work tree, or a test's temporary play
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, str(target))
    return dest


def test_ansible_test_sanity_passes_for_the_plugins(tmp_path):
    pip_cache = os.path.join(TEST_HOME, ".ansible", "test", "cache")
    os.makedirs(pip_cache, exist_ok=True)
    for version in ("24_2",):
        with open(os.path.join(pip_cache, "get_pip_%s.py" % version), "w") as handle:
            handle.write(GET_PIP)
    collection = collection_copy(tmp_path)
    python = "%d.%d" % sys.version_info[:2]
    proc = run([os.path.join(BIN, "ansible-test"), "sanity", "--python", python, "--color", "no", "plugins/"],
               cwd=str(collection), timeout=900, env={"HOME": TEST_HOME})
    errors = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines()
                       if line.startswith(("ERROR", "FATAL", "Running")))
    assert proc.returncode == 0, errors or (proc.stdout[-4000:] + proc.stderr[-4000:])


def test_changelog_fragments_lint():
    proc = run([os.path.join(BIN, "antsibull-changelog"), "lint"])
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
    proc = run([os.path.join(BIN, "antsibull-changelog"), "lint-changelog-yaml", "changelogs/changelog.yaml"])
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
