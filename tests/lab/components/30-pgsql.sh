#!/usr/bin/env bash
# iRedMail's PostgreSQL backend on loopback, with the Postfix lookup tables
# and a private Dovecot that read it the way iRedMail does.
# Usage: 30-pgsql.sh install|up|down|status
#
# A private PostgreSQL 15 cluster on 127.0.0.1:15432 (a system cluster on
# 5432, if any, is left alone), Postfix map files for `postmap -c`, and a
# Dovecot instance with IMAP on 127.0.0.1:12143, all under $LAB_DIR.
set -euo pipefail

LAB_COMPONENT=30-pgsql
# shellcheck source=tests/lab/lib.sh
source "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/../lib.sh"

PG_BIN=/usr/lib/postgresql/15/bin
PG_PORT=15432
IMAP_PORT=12143
DB_NAME=vmail
ADMIN_USER=postgres
DDL=$LAB_HOME/pgsql/iredmail-vmail-pgsql.sql

PG_BASE=$LAB_DIR/pgsql
PG_DATA=$PG_BASE/data
PG_PIDFILE=$PG_DATA/postmaster.pid
PG_SOCK=$PG_BASE/run
PG_LOG=$PG_BASE/postgresql.log
DDL_STAMP=$PG_BASE/ddl.sha256
PF_DIR=$LAB_DIR/postfix/pgsql
DC_DIR=$LAB_DIR/dovecot/pgsql
DC_CONF=$DC_DIR/dovecot.conf
DC_SQL=$DC_DIR/dovecot-pgsql.conf
DC_RUN=$DC_DIR/run
DC_PIDFILE=$DC_RUN/master.pid
DC_LOG=$DC_DIR/dovecot.log
DC_STARTUP_LOG=$DC_DIR/startup.log

# Where the seeded postmaster's mailbox lives: iRedMail's own layout, as the
# lab's brief asks. Nothing creates /var/vmail: a login works without it, but
# the first mailbox access (IMAP SELECT, delivery) needs it to exist and be
# writable by vmail. (20-mariadb keeps its mail under the lab dir instead.)
STORAGE_BASE_DIR=/var/vmail
STORAGE_NODE=vmail1

PACKAGES=(postgresql postfix postfix-pgsql dovecot-core dovecot-imapd dovecot-pgsql openssl)

# Set when a file the running server has loaded changed.
PG_RELOAD_NEEDED=0
DC_RESTART_NEEDED=0

# PostgreSQL refuses to run as root. psql as OS user postgres also gets peer
# auth on the private socket, so bootstrapping needs no password.
as_pg() { (cd / && runuser -u postgres -- "$@"); }

psql_admin() {
    # client_min_messages: the re-runnable DDL would print a NOTICE per object.
    as_pg env PGOPTIONS='-c client_min_messages=warning' \
        "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U "$ADMIN_USER" "$@"
}

# lab_pid_alive checks the command name only; the command line also has to
# name our data dir / config, or a recycled pid could be another cluster's
# postmaster or another lab component's Dovecot.
pid_is_ours() { # pidfile comm marker
    lab_pid_alive "$1" "$2" || return 1
    tr '\0' ' ' <"/proc/$(lab_pid_of "$1")/cmdline" 2>/dev/null | grep -qF -- "$3"
}
pg_alive() { pid_is_ours "$PG_PIDFILE" postgres "$PG_DATA"; }
dc_alive() { pid_is_ours "$DC_PIDFILE" dovecot "$DC_CONF"; }

need_binaries() {
    local f
    for f in "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PG_BIN/psql" /usr/sbin/postmap /usr/sbin/dovecot \
        /usr/bin/doveadm /usr/bin/openssl /usr/lib/postfix/postfix-pgsql.so \
        /usr/lib/dovecot/modules/auth/libdriver_pgsql.so; do
        [[ -e $f ]] || lab_die "$f is missing: run '$0 install' first"
    done
}

read_secrets() {
    POSTMASTER_PASSWORD=$(lab_postmaster_password)
    ADMIN_PASSWORD=$(lab_secret pgsql_admin_password)
    VMAILADMIN_PASSWORD=$(lab_secret pgsql_vmailadmin_password)
    VMAIL_PASSWORD=$(lab_secret pgsql_vmail_password)
}

# Dovecot drops mail processes to `vmail` (uid/gid 2000 on iRedMail). Another
# component may create it at the same moment, hence the re-checks.
ensure_vmail_user() {
    if getent passwd vmail >/dev/null; then return 0; fi
    if ! getent group vmail >/dev/null; then
        if getent group 2000 >/dev/null; then
            groupadd --system vmail 2>/dev/null || true
        else
            groupadd -g 2000 vmail 2>/dev/null || true
        fi
        getent group vmail >/dev/null || lab_die "could not create group vmail"
    fi
    if getent passwd 2000 >/dev/null; then
        useradd --system -g vmail -d /var/vmail -M -s /usr/sbin/nologin vmail 2>/dev/null || true
    else
        useradd -u 2000 -g vmail -d /var/vmail -M -s /usr/sbin/nologin vmail 2>/dev/null || true
    fi
    getent passwd vmail >/dev/null || lab_die "could not create user vmail"
}

# --- PostgreSQL -----------------------------------------------------------

# lab_install_file for files inside the data dir, which postgres must own.
pg_install_file() { # path mode <content
    local rc=0
    lab_install_file "$1" "$2" || rc=$?
    chown postgres:postgres "$1"
    return "$rc"
}

ensure_cluster() {
    install -d -o postgres -g postgres -m 0700 "$PG_BASE"
    install -d -o postgres -g postgres -m 0755 "$PG_SOCK"
    # The socket path must fit in sockaddr_un.sun_path (108 bytes).
    ((${#PG_SOCK} + 18 < 108)) || lab_die "lab dir path too long for a unix socket: $PG_SOCK"

    if [[ ! -f $PG_DATA/PG_VERSION ]]; then
        as_pg test -w "$PG_BASE" ||
            lab_die "user postgres cannot write $PG_BASE (is a parent directory closed to it?)"
        lab_log "initdb $PG_DATA"
        # Built aside and renamed, so a failed initdb leaves no half-made
        # cluster for the next run to trip over. --no-sync: disposable data.
        rm -rf "$PG_DATA.new"
        as_pg "$PG_BIN/initdb" -D "$PG_DATA.new" -U "$ADMIN_USER" -E UTF8 --no-locale --no-sync \
            --auth-local=peer --auth-host=scram-sha-256 >"$PG_BASE/initdb.log" 2>&1 ||
            lab_fail_with_logs "initdb failed" "$PG_BASE/initdb.log"
        echo "include_if_exists = 'lab.conf'" >>"$PG_DATA.new/postgresql.conf"
        mv "$PG_DATA.new" "$PG_DATA"
    fi

    # fsync and friends are off: the lab is disposable, and tests get faster.
    if pg_install_file "$PG_DATA/lab.conf" 0600 <<EOF; then PG_RELOAD_NEEDED=1; fi
# Written by tests/lab/components/30-pgsql.sh
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
password_encryption = scram-sha-256
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
EOF
    # Peer auth on the socket lets OS user postgres bootstrap; every TCP
    # client (tests, Postfix, Dovecot, the collection) needs its password.
    if pg_install_file "$PG_DATA/pg_hba.conf" 0600 <<EOF; then PG_RELOAD_NEEDED=1; fi
# Written by tests/lab/components/30-pgsql.sh
local   all   all                  peer
host    all   all   127.0.0.1/32   scram-sha-256
EOF
}

start_pg() {
    lab_require_port_free 127.0.0.1 "$PG_PORT" PostgreSQL
    lab_log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    # pg_ctl, running as postgres, appends the server log: create it as theirs.
    [[ -f $PG_LOG ]] || install -o postgres -g postgres -m 0640 /dev/null "$PG_LOG"
    # setsid: a Ctrl-C in the caller's terminal must not reach the server.
    setsid -w runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 -s start \
        </dev/null >/dev/null 2>>"$PG_BASE/pg_ctl.log" ||
        lab_fail_with_logs "PostgreSQL did not start" "$PG_BASE/pg_ctl.log" "$PG_LOG"
    STARTED_PG=1
    trap stop_unverified EXIT
    pg_alive || lab_fail_with_logs "PostgreSQL started but its pid file is not right" "$PG_LOG"
}

ddl_sum() { sha256sum <"$DDL" | cut -d' ' -f1; }

load_database() {
    local d
    local -A hash
    for d in "$LAB_MAIL_DOMAIN" "$LAB_MAIL_DOMAIN_DISABLED" "$LAB_MAIL_DOMAIN_BACKUPMX"; do
        hash[$d]=$(lab_ssha512 "$POSTMASTER_PASSWORD")
    done

    # Secrets are alphanumeric, so they can sit inside '...' literals; on
    # stdin they stay out of the process list.
    psql_admin -d postgres <<EOF || lab_fail_with_logs "could not create the roles and database" "$PG_LOG"
ALTER ROLE $ADMIN_USER PASSWORD '$ADMIN_PASSWORD';
SELECT 'CREATE ROLE vmailadmin' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vmailadmin') \gexec
SELECT 'CREATE ROLE vmail' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vmail') \gexec
ALTER ROLE vmailadmin LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$VMAILADMIN_PASSWORD';
ALTER ROLE vmail LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$VMAIL_PASSWORD';
SELECT 'CREATE DATABASE $DB_NAME OWNER $ADMIN_USER ENCODING ''UTF8'' TEMPLATE template0'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB_NAME') \gexec
EOF

    psql_admin -d "$DB_NAME" <"$DDL" || lab_fail_with_logs "could not load $DDL" "$PG_LOG"

    # The database and its tables belong to the admin role on purpose: the
    # replication must get by with vmailadmin's plain DML rights (iRedMail
    # makes vmailadmin the owner, which would hide a missing grant).
    psql_admin -d "$DB_NAME" <<EOF || lab_fail_with_logs "could not grant or seed" "$PG_LOG"
REVOKE ALL ON DATABASE $DB_NAME FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE $DB_NAME TO vmailadmin, vmail;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO vmailadmin, vmail;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO vmailadmin;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO vmailadmin;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO vmail;
-- Dovecot's quota dict writes here.
GRANT SELECT, INSERT, UPDATE, DELETE ON used_quota TO vmail;
-- Tables a test adds later as admin get the same rights.
ALTER DEFAULT PRIVILEGES FOR ROLE $ADMIN_USER IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO vmailadmin;
ALTER DEFAULT PRIVILEGES FOR ROLE $ADMIN_USER IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO vmailadmin;
ALTER DEFAULT PRIVILEGES FOR ROLE $ADMIN_USER IN SCHEMA public
    GRANT SELECT ON TABLES TO vmail;

-- Seed. Insert-if-missing: a restart must not undo what a test changed.
BEGIN;
INSERT INTO domain (domain, transport, settings, backupmx, active) VALUES
    ('$LAB_MAIL_DOMAIN',          'dovecot', 'default_user_quota:1024;', 0, 1),
    ('$LAB_MAIL_DOMAIN_DISABLED', 'dovecot', 'default_user_quota:1024;', 0, 0),
    ('$LAB_MAIL_DOMAIN_BACKUPMX', 'dovecot', 'default_user_quota:1024;', 1, 1)
ON CONFLICT (domain) DO NOTHING;

-- postmaster@<domain> as the iRedMail installer makes it: maildir without a
-- timestamp, 1024 MB quota; the first domain's postmaster is global admin.
INSERT INTO mailbox (username, password, name, storagebasedirectory, storagenode,
                     maildir, quota, domain, isglobaladmin, passwordlastchange, created, active)
VALUES
    ('postmaster@$LAB_MAIL_DOMAIN', '${hash[$LAB_MAIL_DOMAIN]}', 'postmaster',
     '$STORAGE_BASE_DIR', '$STORAGE_NODE', '$LAB_MAIL_DOMAIN/p/o/s/postmaster/', 1024,
     '$LAB_MAIL_DOMAIN', 1, NOW(), NOW(), 1),
    ('postmaster@$LAB_MAIL_DOMAIN_DISABLED', '${hash[$LAB_MAIL_DOMAIN_DISABLED]}', 'postmaster',
     '$STORAGE_BASE_DIR', '$STORAGE_NODE', '$LAB_MAIL_DOMAIN_DISABLED/p/o/s/postmaster/', 1024,
     '$LAB_MAIL_DOMAIN_DISABLED', 0, NOW(), NOW(), 1),
    ('postmaster@$LAB_MAIL_DOMAIN_BACKUPMX', '${hash[$LAB_MAIL_DOMAIN_BACKUPMX]}', 'postmaster',
     '$STORAGE_BASE_DIR', '$STORAGE_NODE', '$LAB_MAIL_DOMAIN_BACKUPMX/p/o/s/postmaster/', 1024,
     '$LAB_MAIL_DOMAIN_BACKUPMX', 0, NOW(), NOW(), 1)
ON CONFLICT (username) DO NOTHING;

INSERT INTO forwardings (address, forwarding, domain, dest_domain, is_forwarding, active) VALUES
    ('postmaster@$LAB_MAIL_DOMAIN', 'postmaster@$LAB_MAIL_DOMAIN',
     '$LAB_MAIL_DOMAIN', '$LAB_MAIL_DOMAIN', 1, 1),
    ('postmaster@$LAB_MAIL_DOMAIN_DISABLED', 'postmaster@$LAB_MAIL_DOMAIN_DISABLED',
     '$LAB_MAIL_DOMAIN_DISABLED', '$LAB_MAIL_DOMAIN_DISABLED', 1, 1),
    ('postmaster@$LAB_MAIL_DOMAIN_BACKUPMX', 'postmaster@$LAB_MAIL_DOMAIN_BACKUPMX',
     '$LAB_MAIL_DOMAIN_BACKUPMX', '$LAB_MAIL_DOMAIN_BACKUPMX', 1, 1)
ON CONFLICT (address, forwarding) DO NOTHING;

INSERT INTO domain_admins (username, domain) VALUES ('postmaster@$LAB_MAIL_DOMAIN', 'ALL')
ON CONFLICT (username, domain) DO NOTHING;
COMMIT;
EOF
    ddl_sum >"$DDL_STAMP"
}

# --- Postfix lookup tables ------------------------------------------------

# Postfix reads main.cf and each *.cf again and again, 0.3 s apart, until
# the file is at least a second old (it might still be being written): a
# fresh `up` paid 2 s for it on its first postmap. Content is what counts.
backdate_postfix_files() { touch -m -d '1 minute ago' "$PF_DIR"/*.cf; }

write_postfix() {
    local common="hosts       = inet:127.0.0.1:$PG_PORT
user        = vmail
password    = $VMAIL_PASSWORD
dbname      = $DB_NAME"

    # postmap -c only needs a main.cf; the compatibility level keeps it from
    # warning about Postfix 2 defaults.
    lab_install_file "$PF_DIR/main.cf" 0644 <<EOF || true
# Minimal configuration for 'postmap -c $PF_DIR' (lab, PostgreSQL backend).
compatibility_level = 3.6
EOF
    # Hosted domains: active and not backup MX, or an active alias of one.
    lab_install_file "$PF_DIR/virtual_mailbox_domains.cf" 0600 <<EOF || true
$common
query       = SELECT domain FROM domain WHERE domain='%s' AND backupmx=0 AND active=1 UNION SELECT alias_domain.alias_domain FROM alias_domain, domain WHERE alias_domain.alias_domain='%s' AND alias_domain.active=1 AND alias_domain.target_domain=domain.domain AND domain.active=1 AND domain.backupmx=0
EOF
    # Only an existence test for Postfix; the value is what iRedMail returns.
    lab_install_file "$PF_DIR/virtual_mailbox_maps.cf" 0600 <<EOF || true
$common
query       = SELECT mailbox.storagenode || '/' || mailbox.maildir || '/Maildir/' FROM mailbox, domain WHERE mailbox.username='%s' AND mailbox.active=1 AND mailbox.enabledeliver=1 AND domain.domain=mailbox.domain AND domain.active=1
EOF
    # Blind to mailbox.active and alias.active, as in iRedMail: disabling an
    # account only stops mail if its forwardings rows are deactivated too.
    lab_install_file "$PF_DIR/virtual_alias_maps.cf" 0600 <<EOF || true
$common
query       = SELECT forwardings.forwarding FROM forwardings, domain WHERE forwardings.address='%s' AND forwardings.domain=domain.domain AND forwardings.active=1 AND domain.backupmx=0 AND domain.active=1
EOF
    lab_install_file "$PF_DIR/sender_login_maps.cf" 0600 <<EOF || true
$common
query       = SELECT mailbox.username FROM mailbox, domain WHERE mailbox.username='%s' AND mailbox.domain='%d' AND mailbox.domain=domain.domain AND mailbox.enablesmtp=1 AND mailbox.active=1 AND domain.backupmx=0 AND domain.active=1
EOF
    backdate_postfix_files
}

pf_query() { # key map
    postmap -c "$PF_DIR" -q "$1" "pgsql:$PF_DIR/$2.cf"
}

verify_postfix() {
    local pm=postmaster@$LAB_MAIL_DOMAIN out
    out=$(pf_query "$pm" virtual_mailbox_maps) ||
        lab_fail_with_logs "postmap: $pm not found in virtual_mailbox_maps" "$PG_LOG"
    [[ $out == "$STORAGE_NODE/$LAB_MAIL_DOMAIN/p/o/s/postmaster//Maildir/" ]] ||
        lab_die "postmap: unexpected virtual_mailbox_maps answer '$out'"
    [[ $(pf_query "$LAB_MAIL_DOMAIN" virtual_mailbox_domains) == "$LAB_MAIL_DOMAIN" ]] ||
        lab_die "postmap: $LAB_MAIL_DOMAIN is not a virtual mailbox domain"
    ! pf_query "$LAB_MAIL_DOMAIN_DISABLED" virtual_mailbox_domains >/dev/null ||
        lab_die "postmap: $LAB_MAIL_DOMAIN_DISABLED must not be a virtual mailbox domain"
    ! pf_query "$LAB_MAIL_DOMAIN_BACKUPMX" virtual_mailbox_domains >/dev/null ||
        lab_die "postmap: $LAB_MAIL_DOMAIN_BACKUPMX must not be a virtual mailbox domain"
    [[ $(pf_query "$pm" virtual_alias_maps) == "$pm" ]] ||
        lab_die "postmap: the self row of $pm is missing from virtual_alias_maps"
    [[ $(pf_query "$pm" sender_login_maps) == "$pm" ]] ||
        lab_die "postmap: $pm is missing from sender_login_maps"
}

# --- Dovecot --------------------------------------------------------------

write_dovecot() {
    local uid gid
    uid=$(id -u vmail)
    gid=$(id -g vmail)
    mkdir -p "$DC_DIR/state" "$DC_RUN"

    # iRedMail's Dovecot 2.3 queries: the account must be active, in an
    # active domain that is not a backup MX, and have
    # enable<service><secured|tls> = 1. The column is quoted (iRedMail's is
    # not) so that the hyphenated services (lib-storage, indexer-worker,
    # quota-status) look up their column instead of failing; 20-mariadb does
    # the same. The auth process runs as user dovecot and reads this file
    # itself, hence the group.
    if lab_install_file "$DC_SQL" 0640 <<EOF; then DC_RESTART_NEEDED=1; fi
driver = pgsql
connect = host=127.0.0.1 port=$PG_PORT dbname=$DB_NAME user=vmail password=$VMAIL_PASSWORD
default_pass_scheme = CRYPT

iterate_query = SELECT username AS user FROM mailbox

password_query = SELECT mailbox.password, mailbox.allow_nets \\
    FROM mailbox, domain \\
    WHERE mailbox.username='%u' \\
      AND mailbox."enable%Ls%Lc"=1 \\
      AND mailbox.active=1 \\
      AND mailbox.domain=domain.domain \\
      AND domain.backupmx=0 \\
      AND domain.active=1

user_query = SELECT LOWER('%u') AS master_user, \\
    LOWER(mailbox.storagebasedirectory || '/' || mailbox.storagenode || '/' || mailbox.maildir) AS home, \\
    mailbox.mailboxformat || ':~/' || mailbox.mailboxfolder AS mail, \\
    '*:bytes=' || (mailbox.quota * 1048576) AS quota_rule \\
    FROM mailbox, domain \\
    WHERE mailbox.username='%u' \\
      AND mailbox."enable%Ls%Lc"=1 \\
      AND mailbox.active=1 \\
      AND mailbox.domain=domain.domain \\
      AND domain.backupmx=0 \\
      AND domain.active=1
EOF
    chgrp dovecot "$DC_SQL"

    # Own base_dir, state_dir and log file: apart from the system Dovecot and
    # the other lab instances, and never holding the caller's stdout.
    if lab_install_file "$DC_CONF" 0644 <<EOF; then DC_RESTART_NEEDED=1; fi
# Private Dovecot for the lab's PostgreSQL store (tests/lab/components/30-pgsql.sh).
instance_name = mailsync-lab-pgsql
base_dir = $DC_RUN
state_dir = $DC_DIR/state
log_path = $DC_LOG

protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
# The 2 s penalty on a failed login would only slow the tests down.
auth_failure_delay = 0

mail_uid = vmail
mail_gid = vmail
first_valid_uid = $uid
first_valid_gid = $gid
postmaster_address = postmaster@$LAB_MAIL_DOMAIN

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}

passdb {
  driver = sql
  args = $DC_SQL
}
userdb {
  driver = sql
  args = $DC_SQL
}
service auth {
  # Lets dovecot-lda, when run as vmail, ask the userdb.
  unix_listener auth-userdb {
    mode = 0660
    user = vmail
    group = vmail
  }
}
EOF
}

start_dovecot() {
    local deadline
    lab_require_port_free 127.0.0.1 "$IMAP_PORT" "Dovecot (pgsql)"
    doveconf -c "$DC_CONF" -n >/dev/null 2>"$DC_STARTUP_LOG" ||
        lab_fail_with_logs "invalid Dovecot configuration $DC_CONF" "$DC_STARTUP_LOG"
    lab_log "starting Dovecot (imap 127.0.0.1:$IMAP_PORT)"
    rm -f "$DC_PIDFILE"
    # Dovecot daemonizes itself; its own messages go to log_path.
    dovecot -c "$DC_CONF" </dev/null >/dev/null 2>"$DC_STARTUP_LOG" ||
        lab_fail_with_logs "Dovecot did not start" "$DC_STARTUP_LOG" "$DC_LOG"
    # The pid file appears a moment after the launcher returns.
    deadline=$((SECONDS + 10))
    until dc_alive; do
        ((SECONDS < deadline)) || lab_fail_with_logs "Dovecot wrote no pid file" "$DC_STARTUP_LOG" "$DC_LOG"
        sleep 0.05
    done
    STARTED_DC=1
    trap stop_unverified EXIT
    lab_wait_port 127.0.0.1 "$IMAP_PORT" 10 "$DC_PIDFILE" dovecot "$DC_LOG"
}

verify_dovecot() {
    local pm=postmaster@$LAB_MAIL_DOMAIN out
    out=$(doveadm -c "$DC_CONF" user -x service=lda "$pm" 2>&1) ||
        lab_fail_with_logs "doveadm user $pm failed: $out" "$DC_LOG"
    grep -q "^home[[:space:]]*$STORAGE_BASE_DIR/$STORAGE_NODE/$LAB_MAIL_DOMAIN/p/o/s/postmaster/\$" <<<"$out" ||
        lab_die "doveadm user $pm: unexpected answer: $out"
    ! doveadm -c "$DC_CONF" user -x service=lda "postmaster@$LAB_MAIL_DOMAIN_DISABLED" >/dev/null 2>&1 ||
        lab_die "doveadm user: postmaster@$LAB_MAIL_DOMAIN_DISABLED must not resolve (domain inactive)"
    out=$(doveadm -c "$DC_CONF" auth test -x service=imap -x secured "$pm" "$POSTMASTER_PASSWORD" 2>&1) ||
        lab_fail_with_logs "doveadm auth test $pm failed with the right password: $out" "$DC_LOG"
    ! doveadm -c "$DC_CONF" auth test -x service=imap -x secured "$pm" "x$POSTMASTER_PASSWORD" >/dev/null 2>&1 ||
        lab_die "doveadm auth test $pm succeeded with a wrong password"
}

stop_dovecot() {
    dc_alive || return 0
    lab_stop_pidfile "$DC_PIDFILE" dovecot "Dovecot (pgsql)" 30
}

stop_pg() {
    pg_alive || return 0
    lab_log "stopping PostgreSQL (pid $(lab_pid_of "$PG_PIDFILE"))"
    # Fast shutdown (pg_ctl signals the pid in postmaster.pid): lingering
    # client sessions would hold up the default smart shutdown.
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 -s stop ||
        lab_fail_with_logs "PostgreSQL did not stop" "$PG_LOG"
}

# A server this run started but whose checks failed is stopped again, or
# the next `up` would find it running, skip the checks and report success.
# (Not lab_track_start: its plain SIGTERM is PostgreSQL's smart shutdown,
# which would wait for Dovecot's pooled connections; order matters here.)
STARTED_PG=0
STARTED_DC=0
stop_unverified() {
    local rc=$?
    if ((rc != 0)); then
        ((STARTED_DC)) && { lab_log "stopping Dovecot again: this run failed"; stop_dovecot || true; }
        ((STARTED_PG)) && { lab_log "stopping PostgreSQL again: this run failed"; stop_pg || true; }
    fi
    exit "$rc"
}

# --- commands -------------------------------------------------------------

write_env() {
    lab_write_env "$LAB_COMPONENT" \
        "PGSQL_HOST=127.0.0.1" \
        "PGSQL_PORT=$PG_PORT" \
        "PGSQL_DATABASE=$DB_NAME" \
        "PGSQL_ADMIN_USER=$ADMIN_USER" \
        "PGSQL_ADMIN_PASSWORD=$ADMIN_PASSWORD" \
        "PGSQL_VMAILADMIN_USER=vmailadmin" \
        "PGSQL_VMAILADMIN_PASSWORD=$VMAILADMIN_PASSWORD" \
        "PGSQL_VMAIL_USER=vmail" \
        "PGSQL_VMAIL_PASSWORD=$VMAIL_PASSWORD" \
        "POSTFIX_PGSQL_DIR=$PF_DIR" \
        "DOVECOT_PGSQL_CONF=$DC_CONF"
}

cmd_up() {
    local started=0
    need_binaries
    lab_init_dirs
    read_secrets
    ensure_vmail_user

    ensure_cluster
    if pg_alive; then
        if ((PG_RELOAD_NEEDED)); then
            lab_log "PostgreSQL configuration changed; reloading"
            as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -s reload
        fi
        # An edited DDL file reaches a running server too.
        if [[ $(cat "$DDL_STAMP" 2>/dev/null) != "$(ddl_sum)" ]]; then
            lab_log "$DDL changed; applying it"
            load_database
        fi
    else
        start_pg
        # Schema, roles and seed are re-applied whenever this run starts the
        # server; all of it is idempotent.
        load_database
        started=1
    fi

    write_postfix
    write_dovecot
    if dc_alive && ((DC_RESTART_NEEDED)); then
        lab_log "Dovecot configuration changed; restarting"
        stop_dovecot
    fi
    if ! dc_alive; then
        start_dovecot
        started=1
    fi

    if ((started)); then
        verify_postfix
        verify_dovecot
        lab_log "ready: PostgreSQL 127.0.0.1:$PG_PORT (pid $(lab_pid_of "$PG_PIDFILE")), Dovecot imap 127.0.0.1:$IMAP_PORT (pid $(lab_pid_of "$DC_PIDFILE"))"
    fi
    STARTED_PG=0
    STARTED_DC=0
    write_env
}

cmd_down() {
    stop_dovecot
    stop_pg
}

cmd_status() {
    local pg=stopped dc=stopped
    pg_alive && pg="pid $(lab_pid_of "$PG_PIDFILE") 127.0.0.1:$PG_PORT"
    dc_alive && dc="pid $(lab_pid_of "$DC_PIDFILE") imap 127.0.0.1:$IMAP_PORT"
    if [[ $pg != stopped && $dc != stopped ]]; then
        printf '%-12s running  postgres %s  dovecot %s\n' "$LAB_COMPONENT" "$pg" "$dc"
    elif [[ $pg == stopped && $dc == stopped ]]; then
        printf '%-12s stopped\n' "$LAB_COMPONENT"
        return 3
    else
        printf '%-12s partial  postgres %s  dovecot %s\n' "$LAB_COMPONENT" "$pg" "$dc"
        return 1
    fi
}

case "${1:-}" in
    install) lab_apt_install "${PACKAGES[@]}" ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 install|up|down|status" >&2
        exit 2
        ;;
esac
