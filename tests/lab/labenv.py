"""Where the lab keeps its state, and reading its env file (`KEY=value` lines).

Standard library only: the integration tests, the benchmark and the AD
seeders that run under the system python3 (Samba's bindings) all use it.
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB_DIR = os.environ.get("MAILSYNC_LAB_DIR", os.path.join(ROOT, ".lab"))
ENV_FILE = os.path.join(LAB_DIR, "lab.env")


def read_env(path=ENV_FILE):
    """The env file as a dict; comments and blank lines skipped (see CONTRACT.md)."""
    env = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, dummy, value = line.partition("=")
                env[key] = value
    return env
