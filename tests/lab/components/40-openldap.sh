#!/usr/bin/env bash
# iRedMail's OpenLDAP backend on loopback, with the Postfix lookup tables and
# a private Dovecot that read it the way iRedMail does.
# Usage: 40-openldap.sh install|up|down|status
#
# slapd (OpenLDAP 2.5, slapd.conf format, mdb) on 127.0.0.1:10389 with
# iRedMail's schema and DIT under dc=example,dc=com, Postfix map files for
# `postmap -c`, and a Dovecot instance with IMAP on 127.0.0.1:13143.
set -euo pipefail

LAB_COMPONENT=40-openldap
# shellcheck source=tests/lab/lib.sh
source "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/../lib.sh"

LDAP_PORT=10389
IMAP_PORT=13143
URI=ldap://127.0.0.1:$LDAP_PORT
SUFFIX=dc=example,dc=com
BASE_DN=o=domains,$SUFFIX
ADMINS_DN=o=domainAdmins,$SUFFIX
ROOT_DN=cn=Manager,$SUFFIX
VMAIL_DN=cn=vmail,$SUFFIX
VMAILADMIN_DN=cn=vmailadmin,$SUFFIX

DATA_SRC=$LAB_HOME/openldap
LDAP_BASE=$LAB_DIR/openldap
LDAP_CONF=$LDAP_BASE/slapd.conf
LDAP_DATA=$LDAP_BASE/data
LDAP_RUN=$LDAP_BASE/run
LDAP_PIDFILE=$LDAP_RUN/slapd.pid
LDAP_LOG=$LDAP_BASE/slapd.log
AMAVIS_SCHEMA=$LDAP_BASE/schema/amavis.schema
ROOTPW_HASH_FILE=$LDAP_BASE/rootpw.hash
PF_DIR=$LAB_DIR/postfix/ldap
DC_DIR=$LAB_DIR/dovecot/ldap
DC_CONF=$DC_DIR/dovecot.conf
DC_LDAP=$DC_DIR/dovecot-ldap.conf
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

PACKAGES=(slapd ldap-utils postfix postfix-ldap dovecot-core dovecot-imapd dovecot-ldap openssl)

# Set when a file the running server has loaded changed.
LDAP_RESTART_NEEDED=0
DC_RESTART_NEEDED=0

# Bash 5.2 would otherwise read '&' in ${var//pattern/replacement} as "the
# match"; the rendered values are taken literally.
shopt -u patsub_replacement 2>/dev/null || true

# lab_pid_alive checks the command name only; the command line also has to
# name our config, or a recycled pid could be someone else's slapd/Dovecot.
pid_is_ours() { # pidfile comm marker
    lab_pid_alive "$1" "$2" || return 1
    tr '\0' ' ' <"/proc/$(lab_pid_of "$1")/cmdline" 2>/dev/null | grep -qF -- "$3"
}
ldap_alive() { pid_is_ours "$LDAP_PIDFILE" slapd "$LDAP_CONF"; }
dc_alive() { pid_is_ours "$DC_PIDFILE" dovecot "$DC_CONF"; }

need_binaries() {
    local f
    for f in /usr/sbin/slapd /usr/sbin/slaptest /usr/sbin/slapindex /usr/bin/ldapadd \
        /usr/bin/ldapsearch /usr/bin/ldapwhoami /usr/lib/ldap/back_mdb.so /usr/lib/ldap/pw-sha2.so \
        /usr/sbin/postmap /usr/lib/postfix/postfix-ldap.so /usr/sbin/dovecot /usr/bin/doveadm \
        /usr/lib/dovecot/modules/auth/libauthdb_ldap.so /usr/bin/openssl; do
        [[ -e $f ]] || lab_die "$f is missing: run '$0 install' first"
    done
}

read_secrets() {
    POSTMASTER_PASSWORD=$(lab_postmaster_password)
    ROOT_PASSWORD=$(lab_secret openldap_root_password)
    VMAILADMIN_PASSWORD=$(lab_secret openldap_vmailadmin_password)
    VMAIL_PASSWORD=$(lab_secret openldap_vmail_password)
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

# True if HASH is {SSHA512} of PASSWORD. Lets a generated hash be kept across
# runs: a fresh salt each time would make slapd.conf differ on every `up`.
ssha512_matches() { # hash password
    local tmp rc=0
    [[ $1 == '{SSHA512}'* ]] || return 1
    tmp=$(mktemp -d)
    printf '%s' "${1#\{SSHA512\}}" | base64 -d >"$tmp/raw" 2>/dev/null || rc=1
    if ((rc == 0)); then
        head -c 64 "$tmp/raw" >"$tmp/digest"
        tail -c +65 "$tmp/raw" >"$tmp/salt"
        { printf '%s' "$2"; cat "$tmp/salt"; } | openssl dgst -sha512 -binary | cmp -s - "$tmp/digest" || rc=1
    fi
    rm -rf "$tmp"
    return "$rc"
}

# --- the amavisd schema -----------------------------------------------------

# amavisAccount comes from Debian's amavisd-new package. Only its schema file
# is needed, so the package is downloaded and unpacked, never installed; the
# file is kept in the lab dir so later runs need no network.
fetch_amavis_schema() {
    local tmp
    [[ -s $AMAVIS_SCHEMA ]] && return 0
    lab_log "fetching the amavisd LDAP schema from Debian's amavisd-new package"
    tmp=$(mktemp -d)
    # apt's download sandbox user must be able to write there.
    chmod 0755 "$tmp"
    if getent passwd _apt >/dev/null; then chown _apt "$tmp"; fi
    if ! (cd "$tmp" && apt-get download -q amavisd-new) >"$tmp/download.log" 2>&1; then
        # A fresh machine may not have package lists yet.
        apt-get -o DPkg::Lock::Timeout=600 update -q >&2
        (cd "$tmp" && apt-get download -q amavisd-new) >"$tmp/download.log" 2>&1 ||
            lab_fail_with_logs "apt-get download amavisd-new failed" "$tmp/download.log"
    fi
    dpkg-deb -x "$tmp"/amavisd-new_*.deb "$tmp/root"
    grep -q "NAME 'amavisAccount'" "$tmp/root/etc/ldap/schema/amavis.schema" ||
        lab_die "amavisd-new's package has no amavisAccount schema at etc/ldap/schema/amavis.schema"
    mkdir -p "$(dirname "$AMAVIS_SCHEMA")"
    cp "$tmp/root/etc/ldap/schema/amavis.schema" "$AMAVIS_SCHEMA.tmp"
    mv -f "$AMAVIS_SCHEMA.tmp" "$AMAVIS_SCHEMA"
    rm -rf "$tmp"
}

# --- slapd ------------------------------------------------------------------

root_password_hash() {
    local hash=""
    [[ -s $ROOTPW_HASH_FILE ]] && hash=$(head -n1 "$ROOTPW_HASH_FILE")
    if ! ssha512_matches "$hash" "$ROOT_PASSWORD"; then
        hash=$(lab_ssha512 "$ROOT_PASSWORD")
        printf '%s\n' "$hash" | lab_install_file "$ROOTPW_HASH_FILE" 0600 || true
    fi
    printf '%s\n' "$hash"
}

write_slapd_conf() {
    local rootpw schema_sum
    rootpw=$(root_password_hash)
    # slapd reads schema files only at start: their digest in slapd.conf turns
    # an edited schema into a changed config, hence a restart.
    schema_sum=$(cat "$AMAVIS_SCHEMA" "$DATA_SRC/iredmail.schema" | sha256sum | cut -d' ' -f1)
    mkdir -p "$LDAP_RUN"
    install -d -m 0700 "$LDAP_DATA"
    # iredmail.schema refers to nis and inetorgperson attributes: keep order.
    if lab_install_file "$LDAP_CONF" 0600 <<EOF; then LDAP_RESTART_NEEDED=1; fi
# Lab OpenLDAP for iRedMail's LDAP backend (tests/lab/components/40-openldap.sh).
# Schema digest: $schema_sum
include     /etc/ldap/schema/core.schema
include     /etc/ldap/schema/cosine.schema
include     /etc/ldap/schema/nis.schema
include     /etc/ldap/schema/inetorgperson.schema
include     $AMAVIS_SCHEMA
include     $DATA_SRC/iredmail.schema

pidfile     $LDAP_PIDFILE
argsfile    $LDAP_RUN/slapd.args

modulepath  /usr/lib/ldap
moduleload  back_mdb
# {SSHA512}, iRedMail's default scheme; slapd only knows up to {SSHA} alone.
moduleload  pw-sha2

# As on iRedMail: no anonymous bind, LDAPv3 only. Binding with a password
# (the "auth" access below) is what Dovecot's auth_bind needs.
disallow    bind_anon
require     LDAPv3
password-hash {SSHA512}

database    mdb
suffix      "$SUFFIX"
rootdn      "$ROOT_DN"
rootpw      $rootpw
directory   $LDAP_DATA
# Room for bulk tests; the map is sparse, so this costs no disk up front.
maxsize     2147483648
sizelimit   unlimited
# Disposable data: no fsync per write.
dbnosync

index objectClass,entryCSN,entryUUID                                        eq
index uidNumber,gidNumber,uid,memberUid,loginShell                          eq,pres
index homeDirectory,mailMessageStore                                        eq,pres
index ou,cn,mail,sn,givenName,telephoneNumber,displayName                   eq,pres,sub
index shadowLastChange                                                      eq,pres
index member,uniqueMember                                                   eq,pres
index domainName,mtaTransport,accountStatus,enabledService,disabledService  eq,pres,sub
index domainAliasName                                                       eq,pres,sub
index domainMaxUserNumber                                                   eq,pres
index domainAdmin,domainGlobalAdmin,domainBackupMX                          eq,pres,sub
index domainSenderBccAddress,domainRecipientBccAddress                      eq,pres,sub
index accessPolicy,hasMember,listAllowedUser,mailingListID                  eq,pres,sub
index mailForwardingAddress,shadowAddress                                   eq,pres,sub
index backupMailAddress,memberOfGroup                                       eq,pres,sub
index userRecipientBccAddress,userSenderBccAddress                          eq,pres,sub
index mobile,departmentNumber,employeeNumber                                eq,pres,sub

# Access. First match wins, so the narrow rules come first.
# Passwords and forwarding under the account trees: Postfix/Dovecot (vmail)
# read them, the admin account (vmailadmin) writes them, the owner may
# change them, anyone may use them to bind, nobody else sees them.
access to dn.subtree="$BASE_DN" attrs=userPassword,mailForwardingAddress,employeeNumber
    by anonymous                   auth
    by self                        write
    by dn.exact="$VMAIL_DN"        read
    by dn.exact="$VMAILADMIN_DN"   write
    by *                           none

access to dn.subtree="$ADMINS_DN" attrs=userPassword
    by anonymous                   auth
    by self                        write
    by dn.exact="$VMAIL_DN"        read
    by dn.exact="$VMAILADMIN_DN"   write
    by *                           none

# Other passwords (cn=vmail, cn=vmailadmin): usable to bind, readable by vmail.
access to attrs=userPassword
    by anonymous                   auth
    by self                        write
    by dn.exact="$VMAIL_DN"        read
    by *                           none

# Accounts and domains: vmailadmin writes, vmail and logged-in users read.
access to dn.subtree="$BASE_DN"
    by dn.exact="$VMAIL_DN"        read
    by dn.exact="$VMAILADMIN_DN"   write
    by users                       read
    by anonymous                   auth

access to dn.subtree="$ADMINS_DN"
    by dn.exact="$VMAIL_DN"        read
    by dn.exact="$VMAILADMIN_DN"   write
    by self                        read
    by anonymous                   auth

access to *
    by dn.exact="$VMAIL_DN"        read
    by users                       read
    by anonymous                   auth
EOF
}

start_slapd() {
    lab_require_port_free 127.0.0.1 "$LDAP_PORT" slapd
    # slapd -d none says nothing about a bad config; slaptest does.
    slaptest -u -f "$LDAP_CONF" >"$LDAP_BASE/slaptest.log" 2>&1 ||
        lab_fail_with_logs "invalid slapd configuration $LDAP_CONF" "$LDAP_BASE/slaptest.log"
    # An index added to the config only covers existing entries after this.
    if ((LDAP_RESTART_NEEDED)) && [[ -f $LDAP_DATA/data.mdb ]]; then
        slapindex -q -f "$LDAP_CONF" >"$LDAP_BASE/slapindex.log" 2>&1 ||
            lab_fail_with_logs "slapindex failed" "$LDAP_BASE/slapindex.log"
    fi
    lab_log "starting slapd on $URI"
    rm -f "$LDAP_PIDFILE"
    # Foreground (-d) under setsid so that its messages go to our log file
    # and a Ctrl-C in the caller's terminal does not reach it; debug level
    # "none" still prints start, stop and errors, without per-operation noise.
    setsid slapd -d none -h "$URI/" -f "$LDAP_CONF" </dev/null >>"$LDAP_LOG" 2>&1 &
    STARTED_LDAP=1
    trap stop_unverified EXIT
    local deadline=$((SECONDS + 10))
    until ldap_alive; do
        kill -0 $! 2>/dev/null || lab_fail_with_logs "slapd exited during startup" "$LDAP_LOG"
        ((SECONDS < deadline)) || lab_fail_with_logs "slapd wrote no pid file" "$LDAP_LOG"
        sleep 0.05
    done
    lab_wait_port 127.0.0.1 "$LDAP_PORT" 30 "$LDAP_PIDFILE" slapd "$LDAP_LOG"
}

# --- seed ---------------------------------------------------------------------

# Expands @NAME@ from environment variables T_NAME; a line that held only a
# placeholder whose value is empty is dropped (an empty line would end the
# LDIF entry early).
render() { # template
    awk '
        /^@[A-Z_]+@$/ && ENVIRON["T_" substr($0, 2, length($0) - 2)] == "" { next }
        {
            out = ""
            line = $0
            while (match(line, /@[A-Z_]+@/)) {
                out = out substr(line, 1, RSTART - 1) ENVIRON["T_" substr(line, RSTART + 1, RLENGTH - 2)]
                line = substr(line, RSTART + RLENGTH)
            }
            print out line
        }' "$1"
}

# Files for ldap tools' -y, which takes the whole file (no newline) as password.
make_password_files() {
    PW_DIR=$(mktemp -d "$LDAP_BASE/.pw.XXXXXX")
    (
        umask 077
        printf '%s' "$ROOT_PASSWORD" >"$PW_DIR/root"
        printf '%s' "$VMAIL_PASSWORD" >"$PW_DIR/vmail"
        printf '%s' "$VMAILADMIN_PASSWORD" >"$PW_DIR/vmailadmin"
        printf '%s' "$POSTMASTER_PASSWORD" >"$PW_DIR/postmaster"
    )
}

as_root() { # ldap tool args...
    local tool=$1
    shift
    "$tool" -x -H "$URI" -D "$ROOT_DN" -y "$PW_DIR/root" "$@"
}

# Adds every seed entry that is missing; entries that exist are left as they
# are, so a restart does not undo what a test changed.
seed() {
    local d days ldif=$LDAP_BASE/seed.ldif skipped=$LDAP_BASE/seed.skipped
    days=$(($(date +%s) / 86400))
    {
        T_SUFFIX=$SUFFIX T_DC=example T_ORGANIZATION=example.com \
            T_VMAIL_PASSWORD_HASH=$(lab_ssha512 "$VMAIL_PASSWORD") \
            T_VMAILADMIN_PASSWORD_HASH=$(lab_ssha512 "$VMAILADMIN_PASSWORD") \
            render "$DATA_SRC/base.ldif.in"
        for d in "$LAB_MAIL_DOMAIN" "$LAB_MAIL_DOMAIN_DISABLED" "$LAB_MAIL_DOMAIN_BACKUPMX"; do
            local status=active domain_extra="" user_extra=""
            case $d in
                "$LAB_MAIL_DOMAIN")
                    # The installer's first domain: its postmaster is global admin.
                    user_extra="domainGlobalAdmin: yes" ;;
                "$LAB_MAIL_DOMAIN_DISABLED")
                    # iRedAdmin marks every account of a disabled domain too.
                    status=disabled
                    user_extra="domainStatus: disabled" ;;
                "$LAB_MAIL_DOMAIN_BACKUPMX")
                    domain_extra="domainBackupMX: yes" ;;
            esac
            echo
            T_DOMAIN=$d T_BASE_DN=$BASE_DN T_DOMAIN_STATUS=$status \
                T_DOMAIN_EXTRA=$domain_extra T_USER_EXTRA=$user_extra \
                T_POSTMASTER_PASSWORD_HASH=$(lab_ssha512 "$POSTMASTER_PASSWORD") \
                T_SHADOW_LAST_CHANGE=$days T_STORAGE=$STORAGE_BASE_DIR/$STORAGE_NODE \
                render "$DATA_SRC/domain.ldif.in"
        done
    } >"$ldif"
    chmod 0600 "$ldif"

    rm -f "$skipped"
    as_root ldapadd -c -S "$skipped" -f "$ldif" >"$LDAP_BASE/seed.log" 2>&1 || true
    # -S lists each entry not added with its error; only "already there" is fine.
    if [[ -s $skipped ]] && grep '^# Error: ' "$skipped" | grep -qv 'Already exists (68)'; then
        lab_fail_with_logs "seeding failed" "$skipped" "$LDAP_BASE/seed.log"
    fi

    # The service accounts' passwords follow the secrets, even if the entries
    # predate them (e.g. a secrets file was removed).
    local who
    for who in vmail vmailadmin; do
        if ! ldapwhoami -x -H "$URI" -D "cn=$who,$SUFFIX" -y "$PW_DIR/$who" >/dev/null 2>&1; then
            lab_log "resetting the password of cn=$who"
            printf 'dn: cn=%s,%s\nchangetype: modify\nreplace: userPassword\nuserPassword: %s\n' \
                "$who" "$SUFFIX" "$(lab_ssha512 "$(cat "$PW_DIR/$who")")" |
                as_root ldapmodify >/dev/null ||
                lab_die "could not reset the password of cn=$who"
        fi
    done
}

verify_ldap() {
    local pm_dn="mail=postmaster@$LAB_MAIL_DOMAIN,ou=Users,domainName=$LAB_MAIL_DOMAIN,$BASE_DN"
    local probe="mail=lab-probe@$LAB_MAIL_DOMAIN,ou=Users,domainName=$LAB_MAIL_DOMAIN,$BASE_DN"
    ldapsearch -x -LLL -H "$URI" -D "$VMAIL_DN" -y "$PW_DIR/vmail" -b "$pm_dn" -s base userPassword |
        grep -q '^userPassword::' ||
        lab_fail_with_logs "cn=vmail cannot read the postmaster's userPassword" "$LDAP_LOG"
    ldapwhoami -x -H "$URI" -D "$pm_dn" -y "$PW_DIR/postmaster" >/dev/null ||
        lab_fail_with_logs "postmaster@$LAB_MAIL_DOMAIN cannot bind with POSTMASTER_PASSWORD" "$LDAP_LOG"
    # vmailadmin must be able to create and remove accounts under o=domains.
    ldapdelete -x -H "$URI" -D "$VMAILADMIN_DN" -y "$PW_DIR/vmailadmin" "$probe" >/dev/null 2>&1 || true
    printf 'dn: %s\nobjectClass: inetOrgPerson\nobjectClass: mailUser\nmail: lab-probe@%s\nuid: lab-probe\ncn: probe\nsn: probe\n' \
        "$probe" "$LAB_MAIL_DOMAIN" |
        ldapadd -x -H "$URI" -D "$VMAILADMIN_DN" -y "$PW_DIR/vmailadmin" >/dev/null ||
        lab_fail_with_logs "cn=vmailadmin cannot add an entry under $BASE_DN" "$LDAP_LOG"
    ldapdelete -x -H "$URI" -D "$VMAILADMIN_DN" -y "$PW_DIR/vmailadmin" "$probe" ||
        lab_fail_with_logs "cn=vmailadmin cannot delete an entry under $BASE_DN" "$LDAP_LOG"
    ! ldapsearch -x -H "$URI" -b "$SUFFIX" -s base >/dev/null 2>&1 ||
        lab_die "an anonymous bind was accepted"
}

# --- Postfix lookup tables ----------------------------------------------------

# Postfix reads main.cf and each *.cf again and again, 0.3 s apart, until
# the file is at least a second old (it might still be being written): a
# fresh `up` paid 2 s for it on its first postmap. Content is what counts.
backdate_postfix_files() { touch -m -d '1 minute ago' "$PF_DIR"/*.cf; }

write_postfix() {
    local common="server_host     = $URI
version         = 3
bind            = yes
start_tls       = no
bind_dn         = $VMAIL_DN
bind_pw         = $VMAIL_PASSWORD
search_base     = $BASE_DN
debuglevel      = 0"
    # Filters are iRedMail's: an account counts only when active, in a domain
    # that is not disabled, with the services the lookup is about.
    lab_install_file "$PF_DIR/main.cf" 0644 <<EOF || true
# Minimal configuration for 'postmap -c $PF_DIR' (lab, OpenLDAP backend).
compatibility_level = 3.6
EOF
    lab_install_file "$PF_DIR/virtual_mailbox_domains.cf" 0600 <<EOF || true
$common
scope           = one
query_filter    = (&(objectClass=mailDomain)(|(domainName=%s)(&(enabledService=domainalias)(domainAliasName=%s)))(!(domainBackupMX=yes))(accountStatus=active)(enabledService=mail))
result_attribute= domainName
EOF
    lab_install_file "$PF_DIR/virtual_mailbox_maps.cf" 0600 <<EOF || true
$common
scope           = sub
query_filter    = (&(objectClass=mailUser)(|(mail=%s)(shadowAddress=%s))(accountStatus=active)(!(domainStatus=disabled))(enabledService=mail)(enabledService=deliver))
result_attribute= homeDirectory
result_format   = %s/Maildir/
EOF
    # Mail aliases, and users with forwarding enabled.
    lab_install_file "$PF_DIR/virtual_alias_maps.cf" 0600 <<EOF || true
$common
scope           = sub
query_filter    = (&(|(mail=%s)(shadowAddress=%s))(accountStatus=active)(!(domainStatus=disabled))(enabledService=mail)(enabledService=deliver)(|(objectClass=mailAlias)(&(objectClass=mailUser)(enabledService=forward))))
result_attribute= mailForwardingAddress
EOF
    # Members of old-style lists (memberOfGroup), and mlmmj lists themselves.
    lab_install_file "$PF_DIR/virtual_group_maps.cf" 0600 <<EOF || true
$common
scope           = sub
query_filter    = (&(accountStatus=active)(!(domainStatus=disabled))(enabledService=mail)(enabledService=deliver)(|(&(|(memberOfGroup=%s)(shadowAddress=%s))(|(objectClass=mailUser)(objectClass=mailExternalUser)))(&(memberOfGroup=%s)(!(shadowAddress=%s))(|(objectClass=mailAlias)(objectClass=mailList)))(&(objectClass=mailList)(enabledService=mlmmj)(|(mail=%s)(shadowAddress=%s)))))
result_attribute= mail
EOF
    # A user (or one of its shadow addresses) resolves to its primary address.
    lab_install_file "$PF_DIR/virtual_group_members_maps.cf" 0600 <<EOF || true
$common
scope           = sub
query_filter    = (&(objectClass=mailUser)(accountStatus=active)(!(domainStatus=disabled))(enabledService=mail)(enabledService=deliver)(|(mail=%s)(shadowAddress=%s)))
result_attribute= mail
EOF
    lab_install_file "$PF_DIR/sender_login_maps.cf" 0600 <<EOF || true
$common
scope           = sub
query_filter    = (&(objectClass=mailUser)(accountStatus=active)(!(domainStatus=disabled))(enabledService=mail)(enabledService=smtp)(|(mail=%s)(shadowAddress=%s)))
result_attribute= mail
EOF
    backdate_postfix_files
}

pf_query() { # key map
    postmap -c "$PF_DIR" -q "$1" "ldap:$PF_DIR/$2.cf"
}

verify_postfix() {
    local pm=postmaster@$LAB_MAIL_DOMAIN out
    out=$(pf_query "$pm" virtual_mailbox_maps) ||
        lab_fail_with_logs "postmap: $pm not found in virtual_mailbox_maps" "$LDAP_LOG"
    [[ $out == "$STORAGE_BASE_DIR/$STORAGE_NODE/$LAB_MAIL_DOMAIN/p/o/s/postmaster//Maildir/" ]] ||
        lab_die "postmap: unexpected virtual_mailbox_maps answer '$out'"
    [[ $(pf_query "$LAB_MAIL_DOMAIN" virtual_mailbox_domains) == "$LAB_MAIL_DOMAIN" ]] ||
        lab_die "postmap: $LAB_MAIL_DOMAIN is not a virtual mailbox domain"
    ! pf_query "$LAB_MAIL_DOMAIN_DISABLED" virtual_mailbox_domains >/dev/null ||
        lab_die "postmap: $LAB_MAIL_DOMAIN_DISABLED must not be a virtual mailbox domain"
    ! pf_query "$LAB_MAIL_DOMAIN_BACKUPMX" virtual_mailbox_domains >/dev/null ||
        lab_die "postmap: $LAB_MAIL_DOMAIN_BACKUPMX must not be a virtual mailbox domain"
    ! pf_query "postmaster@$LAB_MAIL_DOMAIN_DISABLED" virtual_mailbox_maps >/dev/null ||
        lab_die "postmap: postmaster@$LAB_MAIL_DOMAIN_DISABLED must not be a mailbox (domainStatus disabled)"
    [[ $(pf_query "$pm" virtual_group_members_maps) == "$pm" ]] ||
        lab_die "postmap: $pm is missing from virtual_group_members_maps"
    [[ $(pf_query "$pm" sender_login_maps) == "$pm" ]] ||
        lab_die "postmap: $pm is missing from sender_login_maps"
    # The other two maps must at least be valid for Postfix (no answer is fine).
    local map rc
    for map in virtual_alias_maps virtual_group_maps; do
        rc=0
        pf_query "$pm" "$map" >/dev/null 2>"$PF_DIR/.postmap.err" || rc=$?
        if ((rc > 1)) || [[ -s $PF_DIR/.postmap.err ]]; then
            lab_fail_with_logs "postmap: $map failed (exit $rc)" "$PF_DIR/.postmap.err"
        fi
    done
    rm -f "$PF_DIR/.postmap.err"
}

# --- Dovecot ------------------------------------------------------------------

write_dovecot() {
    local uid gid
    uid=$(id -u vmail)
    gid=$(id -g vmail)
    mkdir -p "$DC_DIR/state" "$DC_RUN"

    # iRedMail's Dovecot 2.3 LDAP lookups. auth_bind: the password is checked
    # by binding as the user's entry, so slapd (pw-sha2) verifies the hash.
    # The auth process runs as user dovecot and reads this file itself.
    if lab_install_file "$DC_LDAP" 0640 <<EOF; then DC_RESTART_NEEDED=1; fi
uris            = $URI
ldap_version    = 3
auth_bind       = yes
dn              = $VMAIL_DN
dnpass          = $VMAIL_PASSWORD
base            = $BASE_DN
scope           = subtree
deref           = never
default_pass_scheme = CRYPT

iterate_attrs   = mail=user
iterate_filter  = (&(objectClass=mailUser)(accountStatus=active)(!(domainStatus=disabled))(enabledService=mail))

user_filter     = (&(objectClass=mailUser)(accountStatus=active)(!(domainStatus=disabled))(enabledService=mail)(enabledService=%Ls%Lc)(|(mail=%u)(&(enabledService=shadowaddress)(shadowAddress=%u))))
user_attrs      = mail=master_user,mail=user,=home=%L{ldap:homeDirectory},=mail=%{ldap:mailboxFormat:maildir}:~/%{ldap:mailboxFolder:Maildir}/,mailQuota=quota_rule=*:bytes=%\$

pass_filter     = (&(objectClass=mailUser)(accountStatus=active)(!(domainStatus=disabled))(enabledService=mail)(enabledService=%Ls%Lc)(|(mail=%u)(&(enabledService=shadowaddress)(shadowAddress=%u))))
pass_attrs      = mail=user,userPassword=password,allowNets=allow_nets
EOF
    chgrp dovecot "$DC_LDAP"

    # Own base_dir, state_dir and log file: apart from the system Dovecot and
    # the other lab instances, and never holding the caller's stdout.
    if lab_install_file "$DC_CONF" 0644 <<EOF; then DC_RESTART_NEEDED=1; fi
# Private Dovecot for the lab's OpenLDAP store (tests/lab/components/40-openldap.sh).
instance_name = mailsync-lab-ldap
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
  driver = ldap
  args = $DC_LDAP
}
userdb {
  driver = ldap
  args = $DC_LDAP
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
    lab_require_port_free 127.0.0.1 "$IMAP_PORT" "Dovecot (ldap)"
    doveconf -c "$DC_CONF" -n >/dev/null 2>"$DC_STARTUP_LOG" ||
        lab_fail_with_logs "invalid Dovecot configuration $DC_CONF" "$DC_STARTUP_LOG"
    lab_log "starting Dovecot (imap 127.0.0.1:$IMAP_PORT)"
    rm -f "$DC_PIDFILE"
    # Dovecot daemonizes itself; its own messages go to log_path.
    dovecot -c "$DC_CONF" </dev/null >/dev/null 2>"$DC_STARTUP_LOG" ||
        lab_fail_with_logs "Dovecot did not start" "$DC_STARTUP_LOG" "$DC_LOG"
    STARTED_DC=1
    trap stop_unverified EXIT
    # The pid file appears a moment after the launcher returns.
    deadline=$((SECONDS + 10))
    until dc_alive; do
        ((SECONDS < deadline)) || lab_fail_with_logs "Dovecot wrote no pid file" "$DC_STARTUP_LOG" "$DC_LOG"
        sleep 0.05
    done
    lab_wait_port 127.0.0.1 "$IMAP_PORT" 10 "$DC_PIDFILE" dovecot "$DC_LOG"
}

verify_dovecot() {
    local pm=postmaster@$LAB_MAIL_DOMAIN out
    out=$(doveadm -c "$DC_CONF" user -x service=lda "$pm" 2>&1) ||
        lab_fail_with_logs "doveadm user $pm failed: $out" "$DC_LOG"
    grep -q "^home[[:space:]]*$STORAGE_BASE_DIR/$STORAGE_NODE/$LAB_MAIL_DOMAIN/p/o/s/postmaster/\$" <<<"$out" ||
        lab_die "doveadm user $pm: unexpected answer: $out"
    ! doveadm -c "$DC_CONF" user -x service=lda "postmaster@$LAB_MAIL_DOMAIN_DISABLED" >/dev/null 2>&1 ||
        lab_die "doveadm user: postmaster@$LAB_MAIL_DOMAIN_DISABLED must not resolve (domain disabled)"
    out=$(doveadm -c "$DC_CONF" auth test -x service=imap -x secured "$pm" "$POSTMASTER_PASSWORD" 2>&1) ||
        lab_fail_with_logs "doveadm auth test $pm failed with the right password: $out" "$DC_LOG"
    ! doveadm -c "$DC_CONF" auth test -x service=imap -x secured "$pm" "x$POSTMASTER_PASSWORD" >/dev/null 2>&1 ||
        lab_die "doveadm auth test $pm succeeded with a wrong password"
}

stop_dovecot() {
    dc_alive || return 0
    lab_stop_pidfile "$DC_PIDFILE" dovecot "Dovecot (ldap)" 30
}

stop_slapd() {
    ldap_alive || return 0
    lab_stop_pidfile "$LDAP_PIDFILE" slapd slapd 30
}

# A server this run started but whose checks failed is stopped again, or the
# next `up` would find it running, skip the checks and report success. The
# password files are removed in any case.
STARTED_LDAP=0
STARTED_DC=0
PW_DIR=""
stop_unverified() {
    local rc=$?
    [[ -n $PW_DIR ]] && rm -rf "$PW_DIR"
    if ((rc != 0)); then
        ((STARTED_DC)) && { lab_log "stopping Dovecot again: this run failed"; stop_dovecot || true; }
        ((STARTED_LDAP)) && { lab_log "stopping slapd again: this run failed"; stop_slapd || true; }
    fi
    exit "$rc"
}

# --- commands -------------------------------------------------------------------

write_env() {
    lab_write_env "$LAB_COMPONENT" \
        "OPENLDAP_URI=$URI" \
        "OPENLDAP_SUFFIX=$SUFFIX" \
        "OPENLDAP_BASE_DN=$BASE_DN" \
        "OPENLDAP_ROOT_DN=$ROOT_DN" \
        "OPENLDAP_ROOT_PASSWORD=$ROOT_PASSWORD" \
        "OPENLDAP_VMAILADMIN_DN=$VMAILADMIN_DN" \
        "OPENLDAP_VMAILADMIN_PASSWORD=$VMAILADMIN_PASSWORD" \
        "OPENLDAP_VMAIL_DN=$VMAIL_DN" \
        "OPENLDAP_VMAIL_PASSWORD=$VMAIL_PASSWORD" \
        "POSTFIX_LDAP_DIR=$PF_DIR" \
        "DOVECOT_LDAP_CONF=$DC_CONF"
}

cmd_install() {
    lab_apt_install "${PACKAGES[@]}"
    lab_init_dirs
    fetch_amavis_schema
}

cmd_up() {
    local started=0
    need_binaries
    lab_init_dirs
    read_secrets
    ensure_vmail_user
    fetch_amavis_schema

    write_slapd_conf
    if ldap_alive && ((LDAP_RESTART_NEEDED)); then
        lab_log "slapd configuration changed; restarting"
        stop_slapd
    fi
    trap stop_unverified EXIT
    if ! ldap_alive; then
        start_slapd
        make_password_files
        # Seed and service passwords are checked whenever this run starts
        # slapd; all of it is idempotent.
        seed
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
        [[ -n $PW_DIR ]] || make_password_files
        verify_ldap
        verify_postfix
        verify_dovecot
        lab_log "ready: slapd $URI (pid $(lab_pid_of "$LDAP_PIDFILE")), Dovecot imap 127.0.0.1:$IMAP_PORT (pid $(lab_pid_of "$DC_PIDFILE"))"
    fi
    STARTED_LDAP=0
    STARTED_DC=0
    write_env
}

cmd_down() {
    stop_dovecot
    stop_slapd
}

cmd_status() {
    local ld=stopped dc=stopped
    ldap_alive && ld="pid $(lab_pid_of "$LDAP_PIDFILE") $URI"
    dc_alive && dc="pid $(lab_pid_of "$DC_PIDFILE") imap 127.0.0.1:$IMAP_PORT"
    if [[ $ld != stopped && $dc != stopped ]]; then
        printf '%-12s running  slapd %s  dovecot %s\n' "$LAB_COMPONENT" "$ld" "$dc"
    elif [[ $ld == stopped && $dc == stopped ]]; then
        printf '%-12s stopped\n' "$LAB_COMPONENT"
        return 3
    else
        printf '%-12s partial  slapd %s  dovecot %s\n' "$LAB_COMPONENT" "$ld" "$dc"
        return 1
    fi
}

case "${1:-}" in
    install) cmd_install ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 install|up|down|status" >&2
        exit 2
        ;;
esac
