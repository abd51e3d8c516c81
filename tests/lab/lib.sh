# shellcheck shell=bash
# shellcheck disable=SC2034 # variables here are for the scripts that source it
# Shared helpers for the lab driver and its components (see CONTRACT.md).
# Sourced, never executed. Callers run with `set -euo pipefail` and set
# LAB_COMPONENT (e.g. "20-mariadb") before sourcing, for log prefixes.

LAB_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$LAB_HOME/../.." && pwd)
# Resolved to an absolute path: it ends up in config files of servers whose
# working directory is not ours.
LAB_DIR=$(realpath -m "${MAILSYNC_LAB_DIR:-$REPO_ROOT/.lab}")
export MAILSYNC_LAB_DIR=$LAB_DIR
LAB_RUN_DIR=$LAB_DIR/run
LAB_SECRETS_DIR=$LAB_DIR/secrets
LAB_ENV_DIR=$LAB_DIR/env
# Only the readiness checks use Python; the venv is the one the tests use.
LAB_PYTHON=${MAILSYNC_LAB_PYTHON:-$REPO_ROOT/.venv/bin/python}
: "${LAB_COMPONENT:=lab}"

# Facts shared by every account store (CONTRACT.md, "Common").
LAB_MAIL_DOMAIN=example.com
LAB_MAIL_DOMAIN_DISABLED=disabled.example.com
LAB_MAIL_DOMAIN_BACKUPMX=backup.example.com

lab_log() { printf '[%s] %s\n' "$LAB_COMPONENT" "$*" >&2; }
lab_die() { lab_log "ERROR: $*"; exit 1; }

# Prints the last lines of each existing log, then dies: a server that does
# not come up must say why without anyone hunting for its log.
lab_fail_with_logs() {
    local msg=$1 log
    shift
    lab_log "ERROR: $msg"
    for log in "$@"; do
        [[ -s $log ]] || continue
        printf -- '----- last lines of %s -----\n' "$log" >&2
        tail -n 40 "$log" >&2
    done
    exit 1
}

lab_init_dirs() {
    mkdir -p "$LAB_DIR" "$LAB_RUN_DIR" "$LAB_ENV_DIR" "$LAB_SECRETS_DIR"
    chmod 0700 "$LAB_SECRETS_DIR" "$LAB_ENV_DIR"
}

# --- packages ---------------------------------------------------------------

# Installs the Debian packages that are missing; a no-op (one dpkg-query)
# when all are present, so `lab up` can call it every time.
lab_apt_install() {
    local pkg missing=()
    for pkg in "$@"; do
        if [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null) != "ii "* ]]; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]})) || return 0
    lab_log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Postfix must not ask or write /etc/postfix/main.cf: the lab only uses
    # its lookup tables through `postmap -c`.
    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
    echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
    # One index refresh per hour is enough, however many components install.
    local stamp=/var/lib/apt/periodic/mailsync-lab-update-stamp
    if [[ -z $(find "$stamp" -mmin -60 2>/dev/null) ]]; then
        apt-get -o DPkg::Lock::Timeout=600 update -q >&2
        mkdir -p "$(dirname "$stamp")" && touch "$stamp"
    fi
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >&2
}

# --- secrets and files ------------------------------------------------------

# Prints the secret NAME, generating it on first use. Alphanumeric (the env
# file format allows no quoting) with upper, lower and digits, so it also
# passes AD's password complexity rules.
lab_secret() {
    local name=$1 len=${2:-24} file=$LAB_SECRETS_DIR/$1 value
    if [[ ! -s $file ]]; then
        mkdir -p "$LAB_SECRETS_DIR"
        chmod 0700 "$LAB_SECRETS_DIR"
        while :; do
            value=$(head -c 512 /dev/urandom | tr -dc 'A-Za-z0-9' | cut -c "1-$len")
            [[ ${#value} -eq $len && $value =~ [A-Z] && $value =~ [a-z] && $value =~ [0-9] ]] && break
        done
        (umask 077 && printf '%s\n' "$value" >"$file.tmp" && mv "$file.tmp" "$file")
    fi
    head -n 1 "$file"
}

lab_postmaster_password() { lab_secret postmaster_password; }

# Replaces PATH with stdin only when the content differs, so an idempotent
# `up` leaves files and their directories' mtimes alone. Returns 0 when PATH
# changed, 1 when it did not.
lab_install_file() {
    local path=$1 mode=${2:-0644} tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
        [[ $(stat -c %a "$path") == "${mode#0}" ]] || chmod "$mode" "$path"
        return 1
    fi
    mkdir -p "$(dirname "$path")"
    # Copied next to PATH first so that the final rename is atomic.
    install -m "$mode" "$tmp" "$path.new"
    mv -f "$path.new" "$path"
    rm -f "$tmp"
    return 0
}

# lab_write_env NAME KEY=VALUE... writes $LAB_ENV_DIR/NAME.env (mode 0600).
lab_write_env() {
    local name=$1 kv
    shift
    for kv in "$@"; do
        [[ $kv =~ ^[A-Z][A-Z0-9_]*=[^[:space:]\'\"\\\$\`]*$ ]] ||
            lab_die "env entry not of the form KEY=value without spaces or quotes: $kv"
    done
    printf '%s\n' "$@" | lab_install_file "$LAB_ENV_DIR/$name.env" 0600 || true
}

# {SSHA512} as iRedAdmin makes it: base64(sha512(password + salt) + salt)
# with an 8-byte random salt. Files rather than variables: bash strings cannot
# hold the NUL bytes a binary salt may contain.
lab_ssha512() {
    local pw=$1 tmp
    tmp=$(mktemp -d)
    head -c 8 /dev/urandom >"$tmp/salt"
    { printf '%s' "$pw"; cat "$tmp/salt"; } | openssl dgst -sha512 -binary >"$tmp/digest"
    printf '{SSHA512}%s\n' "$(cat "$tmp/digest" "$tmp/salt" | base64 -w 0)"
    rm -rf "$tmp"
}

# --- processes and ports ----------------------------------------------------

# True if the pid file names a live (not zombie) process whose command name
# starts with COMM: a pid left over from an earlier boot may belong to
# anything by now, and must never be signalled.
lab_pid_alive() {
    local pidfile=$1 comm=$2 pid state name
    [[ -s $pidfile ]] || return 1
    # Dovecot removes its own pid file as it exits: it may go between the two lines.
    pid=$(head -n 1 "$pidfile" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/stat ]] || return 1
    state=$(sed -E 's/^[0-9]+ \(.*\) ([A-Z]).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $state != Z && $state != X ]] || return 1
    name=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $name == "$comm"* ]]
}

lab_pid_of() { head -n 1 "$1"; }

# True if HOST:PORT accepts a connection.
lab_port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# True if some socket listens on TCP PORT (any local address). Read from
# /proc rather than by connecting: a probe connection leaves a line in the
# server's log on every `up`.
lab_port_listening() {
    local hex
    hex=$(printf '%04X' "$1")
    # Columns: sl local_address rem_address st; 0A is LISTEN.
    grep -qE "^ *[0-9]+: [0-9A-F]+:$hex [0-9A-F]+:0000 0A " /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Dies if something already listens on PORT: it is not ours (our own process
# was found dead before this is called), and starting next to it would only
# produce a confusing bind error in a log. HOST is kept for the message.
lab_require_port_free() {
    local host=$1 port=$2 what=$3
    if lab_port_listening "$port"; then
        lab_die "$host:$port is already in use by another process; $what cannot start (see: ss -ltnp 'sport = :$port')"
    fi
}

# lab_wait_port HOST PORT TIMEOUT PIDFILE COMM LOG... waits until PORT
# listens; dies with the logs' tails if the process exits or time runs out.
# Callers then prove the service works with a real client.
lab_wait_port() {
    local host=$1 port=$2 timeout=$3 pidfile=$4 comm=$5
    shift 5
    local deadline=$((SECONDS + timeout))
    while ! lab_port_listening "$port"; do
        lab_pid_alive "$pidfile" "$comm" ||
            lab_fail_with_logs "$comm exited before answering on $host:$port" "$@"
        ((SECONDS < deadline)) ||
            lab_fail_with_logs "$comm did not answer on $host:$port within ${timeout}s" "$@"
        sleep 0.1
    done
}

# lab_stop_pidfile PIDFILE COMM NAME [TIMEOUT] stops only the process named in
# our pid file (SIGTERM, then SIGKILL after TIMEOUT seconds) and waits for it.
lab_stop_pidfile() {
    local pidfile=$1 comm=$2 name=$3 timeout=${4:-30} pid deadline signal=TERM
    if ! lab_pid_alive "$pidfile" "$comm"; then
        rm -f "$pidfile"
        return 0
    fi
    pid=$(lab_pid_of "$pidfile")
    lab_log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + timeout))
    while lab_pid_alive "$pidfile" "$comm"; do
        if ((SECONDS >= deadline)); then
            [[ $signal == TERM ]] || lab_die "$name (pid $pid) survived SIGKILL"
            lab_log "$name (pid $pid) ignored SIGTERM for ${timeout}s, sending SIGKILL"
            signal=KILL
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 10))
        fi
        sleep 0.1
    done
    rm -f "$pidfile"
}

# Servers this run started and has not yet seen pass their checks. If the
# run fails, they are stopped again: a later `up` that found them running
# would skip the checks and report success.
LAB_STARTING=()

lab_track_start() {
    LAB_STARTING+=("$1|$2|$3")
    trap lab__stop_unverified EXIT
}

lab_track_verified() { LAB_STARTING=(); }

lab__stop_unverified() {
    local rc=$? entry pidfile comm name
    if ((rc != 0)); then
        for entry in "${LAB_STARTING[@]}"; do
            IFS='|' read -r pidfile comm name <<<"$entry"
            lab_log "stopping $name again: this run failed"
            lab_stop_pidfile "$pidfile" "$comm" "$name" 30 || true
        done
    fi
    exit "$rc"
}

# --- common env ---------------------------------------------------------------

# The keys every store shares; the driver writes them before the components.
lab_write_common_env() {
    lab_write_env 00-common \
        "LAB_DIR=$LAB_DIR" \
        "MAIL_DOMAIN=$LAB_MAIL_DOMAIN" \
        "MAIL_DOMAIN_DISABLED=$LAB_MAIL_DOMAIN_DISABLED" \
        "MAIL_DOMAIN_BACKUPMX=$LAB_MAIL_DOMAIN_BACKUPMX" \
        "POSTMASTER_PASSWORD=$(lab_postmaster_password)"
}
