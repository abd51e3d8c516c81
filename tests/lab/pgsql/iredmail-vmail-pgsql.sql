-- The lab's `vmail` database for the PostgreSQL backend.
--
-- Written for this project to match the account store of an installed
-- iRedMail 1.8 server (PostgreSQL flavour): same table and column names,
-- types, defaults and index names, so that code tested against the lab
-- behaves the same against a real server. Conventions of that flavour:
-- booleans are INT2, counters INT8, surrogate ids SERIAL, timestamps
-- TIMESTAMP WITHOUT TIME ZONE defaulting to NOW(), `expired` defaulting to
-- '9999-12-31 01:01:01', text columns NOT NULL DEFAULT '', and indexes named
-- idx_<table>_<column>.
--
-- Re-runnable: everything is IF NOT EXISTS / OR REPLACE, because the lab
-- applies it on every cold start. Grants and roles are not here: they depend
-- on the deployment and are made by tests/lab/components/30-pgsql.sh.

-- Hosted mail domains. A domain is served only when active=1 and backupmx=0.
CREATE TABLE IF NOT EXISTS domain (
    domain      VARCHAR(255) NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    disclaimer  TEXT NOT NULL DEFAULT '',
    aliases     INT8 NOT NULL DEFAULT 0,
    mailboxes   INT8 NOT NULL DEFAULT 0,
    maillists   INT8 NOT NULL DEFAULT 0,
    maxquota    INT8 NOT NULL DEFAULT 0,
    quota       INT8 NOT NULL DEFAULT 0,
    transport   VARCHAR(255) NOT NULL DEFAULT 'dovecot',
    backupmx    INT2 NOT NULL DEFAULT 0,
    settings    TEXT NOT NULL DEFAULT '',
    created     TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    modified    TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    expired     TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT '9999-12-31 01:01:01',
    active      INT2 NOT NULL DEFAULT 1,
    PRIMARY KEY (domain)
);
CREATE INDEX IF NOT EXISTS idx_domain_backupmx ON domain (backupmx);
CREATE INDEX IF NOT EXISTS idx_domain_expired ON domain (expired);
CREATE INDEX IF NOT EXISTS idx_domain_active ON domain (active);

-- u@alias_domain is delivered as u@target_domain.
CREATE TABLE IF NOT EXISTS alias_domain (
    alias_domain  VARCHAR(255) NOT NULL,
    target_domain VARCHAR(255) NOT NULL,
    created       TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    modified      TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    active        INT2 NOT NULL DEFAULT 1,
    PRIMARY KEY (alias_domain)
);
CREATE INDEX IF NOT EXISTS idx_alias_domain_target_domain ON alias_domain (target_domain);
CREATE INDEX IF NOT EXISTS idx_alias_domain_active ON alias_domain (active);

-- One row per mailbox. `enable<service><suffix>` columns are what Dovecot's
-- queries test (service name lower-cased, suffix '', 'secured' or 'tls'), so
-- a missing column means a service can never log in. The hyphenated service
-- names need double quotes in SQL.
-- storagebasedirectory/storagenode default to what the iRedMail installer
-- rewrites them to (/var/vmail, vmail1), as on an installed server.
CREATE TABLE IF NOT EXISTS mailbox (
    username                 VARCHAR(255) NOT NULL,
    password                 VARCHAR(255) NOT NULL DEFAULT '',
    name                     VARCHAR(255) NOT NULL DEFAULT '',
    language                 VARCHAR(5) NOT NULL DEFAULT '',
    first_name               VARCHAR(255) NOT NULL DEFAULT '',
    last_name                VARCHAR(255) NOT NULL DEFAULT '',
    mobile                   VARCHAR(255) NOT NULL DEFAULT '',
    telephone                VARCHAR(255) NOT NULL DEFAULT '',
    recovery_email           VARCHAR(255) NOT NULL DEFAULT '',
    birthday                 DATE NOT NULL DEFAULT '0001-01-01',
    mailboxformat            VARCHAR(50) NOT NULL DEFAULT 'maildir',
    mailboxfolder            VARCHAR(50) NOT NULL DEFAULT 'Maildir',
    storagebasedirectory     VARCHAR(255) NOT NULL DEFAULT '/var/vmail',
    storagenode              VARCHAR(255) NOT NULL DEFAULT 'vmail1',
    maildir                  VARCHAR(255) NOT NULL DEFAULT '',
    quota                    INT8 NOT NULL DEFAULT 0,
    domain                   VARCHAR(255) NOT NULL DEFAULT '',
    transport                VARCHAR(255) NOT NULL DEFAULT '',
    department               VARCHAR(255) NOT NULL DEFAULT '',
    rank                     VARCHAR(255) NOT NULL DEFAULT 'normal',
    employeeid               VARCHAR(255) DEFAULT '',
    isadmin                  INT2 NOT NULL DEFAULT 0,
    isglobaladmin            INT2 NOT NULL DEFAULT 0,
    enablesmtp               INT2 NOT NULL DEFAULT 1,
    enablesmtpsecured        INT2 NOT NULL DEFAULT 1,
    enablepop3               INT2 NOT NULL DEFAULT 1,
    enablepop3secured        INT2 NOT NULL DEFAULT 1,
    enablepop3tls            INT2 NOT NULL DEFAULT 1,
    enableimap               INT2 NOT NULL DEFAULT 1,
    enableimapsecured        INT2 NOT NULL DEFAULT 1,
    enableimaptls            INT2 NOT NULL DEFAULT 1,
    enabledeliver            INT2 NOT NULL DEFAULT 1,
    enablelda                INT2 NOT NULL DEFAULT 1,
    enablemanagesieve        INT2 NOT NULL DEFAULT 1,
    enablemanagesievesecured INT2 NOT NULL DEFAULT 1,
    enablesieve              INT2 NOT NULL DEFAULT 1,
    enablesievesecured       INT2 NOT NULL DEFAULT 1,
    enablesievetls           INT2 NOT NULL DEFAULT 1,
    enableinternal           INT2 NOT NULL DEFAULT 1,
    enabledoveadm            INT2 NOT NULL DEFAULT 1,
    "enablelib-storage"      INT2 NOT NULL DEFAULT 1,
    "enablequota-status"     INT2 NOT NULL DEFAULT 1,
    "enableindexer-worker"   INT2 NOT NULL DEFAULT 1,
    enablelmtp               INT2 NOT NULL DEFAULT 1,
    enabledsync              INT2 NOT NULL DEFAULT 1,
    enablesogo               INT2 NOT NULL DEFAULT 1,
    enablesogowebmail        VARCHAR(1) NOT NULL DEFAULT 'y',
    enablesogocalendar       VARCHAR(1) NOT NULL DEFAULT 'y',
    enablesogoactivesync     VARCHAR(1) NOT NULL DEFAULT 'y',
    -- NULL means "no restriction"; an empty string would lock the user out.
    allow_nets               TEXT DEFAULT NULL,
    disclaimer               TEXT NOT NULL DEFAULT '',
    settings                 TEXT NOT NULL DEFAULT '',
    passwordlastchange       TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    created                  TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    modified                 TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    expired                  TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT '9999-12-31 01:01:01',
    active                   INT2 NOT NULL DEFAULT 1,
    PRIMARY KEY (username)
);
CREATE INDEX IF NOT EXISTS idx_mailbox_domain ON mailbox (domain);
CREATE INDEX IF NOT EXISTS idx_mailbox_department ON mailbox (department);
CREATE INDEX IF NOT EXISTS idx_mailbox_employeeid ON mailbox (employeeid);
CREATE INDEX IF NOT EXISTS idx_mailbox_isadmin ON mailbox (isadmin);
CREATE INDEX IF NOT EXISTS idx_mailbox_isglobaladmin ON mailbox (isglobaladmin);
CREATE INDEX IF NOT EXISTS idx_mailbox_enablesmtp ON mailbox (enablesmtp);
CREATE INDEX IF NOT EXISTS idx_mailbox_enablesmtpsecured ON mailbox (enablesmtpsecured);
CREATE INDEX IF NOT EXISTS idx_mailbox_enablepop3 ON mailbox (enablepop3);
CREATE INDEX IF NOT EXISTS idx_mailbox_enablepop3secured ON mailbox (enablepop3secured);
CREATE INDEX IF NOT EXISTS idx_mailbox_enablepop3tls ON mailbox (enablepop3tls);
CREATE INDEX IF NOT EXISTS idx_mailbox_enableimap ON mailbox (enableimap);
CREATE INDEX IF NOT EXISTS idx_mailbox_enableimapsecured ON mailbox (enableimapsecured);
CREATE INDEX IF NOT EXISTS idx_mailbox_enableimaptls ON mailbox (enableimaptls);
CREATE INDEX IF NOT EXISTS idx_mailbox_enabledeliver ON mailbox (enabledeliver);
CREATE INDEX IF NOT EXISTS idx_mailbox_enablelda ON mailbox (enablelda);
CREATE INDEX IF NOT EXISTS idx_mailbox_enablemanagesieve ON mailbox (enablemanagesieve);
CREATE INDEX IF NOT EXISTS idx_mailbox_enablemanagesievesecured ON mailbox (enablemanagesievesecured);
CREATE INDEX IF NOT EXISTS idx_mailbox_enablesieve ON mailbox (enablesieve);
CREATE INDEX IF NOT EXISTS idx_mailbox_enablesievesecured ON mailbox (enablesievesecured);
CREATE INDEX IF NOT EXISTS idx_mailbox_enablesievetls ON mailbox (enablesievetls);
CREATE INDEX IF NOT EXISTS idx_mailbox_enableinternal ON mailbox (enableinternal);
CREATE INDEX IF NOT EXISTS idx_mailbox_enabledoveadm ON mailbox (enabledoveadm);
CREATE INDEX IF NOT EXISTS idx_mailbox_enablelib_storage ON mailbox ("enablelib-storage");
CREATE INDEX IF NOT EXISTS idx_mailbox_enablequota_status ON mailbox ("enablequota-status");
CREATE INDEX IF NOT EXISTS idx_mailbox_enableindexer_worker ON mailbox ("enableindexer-worker");
CREATE INDEX IF NOT EXISTS idx_mailbox_enablelmtp ON mailbox (enablelmtp);
CREATE INDEX IF NOT EXISTS idx_mailbox_enabledsync ON mailbox (enabledsync);
CREATE INDEX IF NOT EXISTS idx_mailbox_enablesogo ON mailbox (enablesogo);
CREATE INDEX IF NOT EXISTS idx_mailbox_passwordlastchange ON mailbox (passwordlastchange);
CREATE INDEX IF NOT EXISTS idx_mailbox_expired ON mailbox (expired);
CREATE INDEX IF NOT EXISTS idx_mailbox_active ON mailbox (active);

-- Every address Postfix resolves through virtual_alias_maps: the self row of
-- each mailbox (is_forwarding=1), per-user forwardings, per-user alias
-- addresses (is_alias=1), alias members (is_list=1), mlmmj lists
-- (is_maillist=1) and catch-alls (address = bare domain).
CREATE TABLE IF NOT EXISTS forwardings (
    id            SERIAL PRIMARY KEY,
    address       VARCHAR(255) NOT NULL DEFAULT '',
    forwarding    VARCHAR(255) NOT NULL DEFAULT '',
    domain        VARCHAR(255) NOT NULL DEFAULT '',
    dest_domain   VARCHAR(255) NOT NULL DEFAULT '',
    is_maillist   INT2 NOT NULL DEFAULT 0,
    is_list       INT2 NOT NULL DEFAULT 0,
    is_forwarding INT2 NOT NULL DEFAULT 0,
    is_alias      INT2 NOT NULL DEFAULT 0,
    active        INT2 NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS idx_forwardings_address ON forwardings (address);
CREATE INDEX IF NOT EXISTS idx_forwardings_forwarding ON forwardings (forwarding);
CREATE UNIQUE INDEX IF NOT EXISTS idx_forwardings_address_forwarding ON forwardings (address, forwarding);
CREATE INDEX IF NOT EXISTS idx_forwardings_domain ON forwardings (domain);
CREATE INDEX IF NOT EXISTS idx_forwardings_dest_domain ON forwardings (dest_domain);
CREATE INDEX IF NOT EXISTS idx_forwardings_is_maillist ON forwardings (is_maillist);
CREATE INDEX IF NOT EXISTS idx_forwardings_is_list ON forwardings (is_list);
CREATE INDEX IF NOT EXISTS idx_forwardings_is_forwarding ON forwardings (is_forwarding);
CREATE INDEX IF NOT EXISTS idx_forwardings_is_alias ON forwardings (is_alias);

-- Mail alias accounts. Their members live in forwardings (is_list=1), not here.
CREATE TABLE IF NOT EXISTS alias (
    address      VARCHAR(255) NOT NULL DEFAULT '',
    name         VARCHAR(255) NOT NULL DEFAULT '',
    accesspolicy VARCHAR(30) NOT NULL DEFAULT '',
    domain       VARCHAR(255) NOT NULL DEFAULT '',
    created      TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    modified     TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    expired      TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT '9999-12-31 01:01:01',
    active       INT2 NOT NULL DEFAULT 1,
    PRIMARY KEY (address)
);
CREATE INDEX IF NOT EXISTS idx_alias_domain ON alias (domain);
CREATE INDEX IF NOT EXISTS idx_alias_expired ON alias (expired);
CREATE INDEX IF NOT EXISTS idx_alias_active ON alias (active);

-- Moderators of aliases and lists; `moderator` may be a pattern like *@domain.
CREATE TABLE IF NOT EXISTS moderators (
    id          SERIAL PRIMARY KEY,
    address     VARCHAR(255) NOT NULL DEFAULT '',
    moderator   VARCHAR(255) NOT NULL DEFAULT '',
    domain      VARCHAR(255) NOT NULL DEFAULT '',
    dest_domain VARCHAR(255) NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS idx_moderators_address ON moderators (address);
CREATE INDEX IF NOT EXISTS idx_moderators_moderator ON moderators (moderator);
CREATE UNIQUE INDEX IF NOT EXISTS idx_moderators_address_moderator ON moderators (address, moderator);
CREATE INDEX IF NOT EXISTS idx_moderators_domain ON moderators (domain);
CREATE INDEX IF NOT EXISTS idx_moderators_dest_domain ON moderators (dest_domain);

-- mlmmj mailing lists (not used for replicated AD groups, present for parity).
CREATE TABLE IF NOT EXISTS maillists (
    id            SERIAL PRIMARY KEY,
    address       VARCHAR(255) NOT NULL DEFAULT '',
    domain        VARCHAR(255) NOT NULL DEFAULT '',
    transport     VARCHAR(255) NOT NULL DEFAULT '',
    accesspolicy  VARCHAR(30) NOT NULL DEFAULT '',
    maxmsgsize    INT8 NOT NULL DEFAULT 0,
    name          VARCHAR(255) NOT NULL DEFAULT '',
    description   TEXT,
    mlid          VARCHAR(36) NOT NULL DEFAULT '',
    is_newsletter INT2 NOT NULL DEFAULT 0,
    settings      TEXT,
    created       TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    modified      TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    expired       TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT '9999-12-31 01:01:01',
    active        INT2 NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_maillists_address ON maillists (address);
CREATE INDEX IF NOT EXISTS idx_maillists_domain ON maillists (domain);
CREATE UNIQUE INDEX IF NOT EXISTS idx_maillists_mlid ON maillists (mlid);
CREATE INDEX IF NOT EXISTS idx_maillists_is_newsletter ON maillists (is_newsletter);
CREATE INDEX IF NOT EXISTS idx_maillists_active ON maillists (active);

CREATE TABLE IF NOT EXISTS maillist_owners (
    id          SERIAL PRIMARY KEY,
    address     VARCHAR(255) NOT NULL DEFAULT '',
    owner       VARCHAR(255) NOT NULL DEFAULT '',
    domain      VARCHAR(255) NOT NULL DEFAULT '',
    dest_domain VARCHAR(255) NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_maillist_owners_address_owner ON maillist_owners (address, owner);
CREATE INDEX IF NOT EXISTS idx_maillist_owners_owner ON maillist_owners (owner);
CREATE INDEX IF NOT EXISTS idx_maillist_owners_domain ON maillist_owners (domain);
CREATE INDEX IF NOT EXISTS idx_maillist_owners_dest_domain ON maillist_owners (dest_domain);

-- Which mailbox administers which domain; domain 'ALL' marks a global admin.
CREATE TABLE IF NOT EXISTS domain_admins (
    username VARCHAR(255) NOT NULL DEFAULT '',
    domain   VARCHAR(255) NOT NULL DEFAULT '',
    created  TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    modified TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    expired  TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT '9999-12-31 01:01:01',
    active   INT2 NOT NULL DEFAULT 1,
    PRIMARY KEY (username, domain)
);
CREATE INDEX IF NOT EXISTS idx_domain_admins_username ON domain_admins (username);
CREATE INDEX IF NOT EXISTS idx_domain_admins_domain ON domain_admins (domain);
CREATE INDEX IF NOT EXISTS idx_domain_admins_active ON domain_admins (active);

-- Admin accounts that have no mailbox.
CREATE TABLE IF NOT EXISTS admin (
    username           VARCHAR(255) NOT NULL DEFAULT '',
    password           VARCHAR(255) NOT NULL DEFAULT '',
    name               VARCHAR(255) NOT NULL DEFAULT '',
    language           VARCHAR(5) NOT NULL DEFAULT '',
    passwordlastchange TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    settings           TEXT NOT NULL DEFAULT '',
    created            TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    modified           TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    expired            TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT '9999-12-31 01:01:01',
    active             INT2 NOT NULL DEFAULT 1,
    PRIMARY KEY (username)
);
CREATE INDEX IF NOT EXISTS idx_admin_passwordlastchange ON admin (passwordlastchange);
CREATE INDEX IF NOT EXISTS idx_admin_expired ON admin (expired);
CREATE INDEX IF NOT EXISTS idx_admin_active ON admin (active);

-- Per-user and per-domain automatic BCC.
CREATE TABLE IF NOT EXISTS sender_bcc_user (
    username    VARCHAR(255) NOT NULL DEFAULT '',
    bcc_address VARCHAR(255) NOT NULL DEFAULT '',
    domain      VARCHAR(255) NOT NULL DEFAULT '',
    created     TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    modified    TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    expired     TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT '9999-12-31 01:01:01',
    active      INT2 NOT NULL DEFAULT 1,
    PRIMARY KEY (username)
);
CREATE INDEX IF NOT EXISTS idx_sender_bcc_user_bcc_address ON sender_bcc_user (bcc_address);
CREATE INDEX IF NOT EXISTS idx_sender_bcc_user_domain ON sender_bcc_user (domain);
CREATE INDEX IF NOT EXISTS idx_sender_bcc_user_expired ON sender_bcc_user (expired);
CREATE INDEX IF NOT EXISTS idx_sender_bcc_user_active ON sender_bcc_user (active);

CREATE TABLE IF NOT EXISTS recipient_bcc_user (
    username    VARCHAR(255) NOT NULL DEFAULT '',
    bcc_address VARCHAR(255) NOT NULL DEFAULT '',
    domain      VARCHAR(255) NOT NULL DEFAULT '',
    created     TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    modified    TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    expired     TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT '9999-12-31 01:01:01',
    active      INT2 NOT NULL DEFAULT 1,
    PRIMARY KEY (username)
);
CREATE INDEX IF NOT EXISTS idx_recipient_bcc_user_bcc_address ON recipient_bcc_user (bcc_address);
CREATE INDEX IF NOT EXISTS idx_recipient_bcc_user_domain ON recipient_bcc_user (domain);
CREATE INDEX IF NOT EXISTS idx_recipient_bcc_user_expired ON recipient_bcc_user (expired);
CREATE INDEX IF NOT EXISTS idx_recipient_bcc_user_active ON recipient_bcc_user (active);

CREATE TABLE IF NOT EXISTS sender_bcc_domain (
    domain      VARCHAR(255) NOT NULL DEFAULT '',
    bcc_address VARCHAR(255) NOT NULL DEFAULT '',
    created     TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    modified    TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    expired     TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT '9999-12-31 01:01:01',
    active      INT2 NOT NULL DEFAULT 1,
    PRIMARY KEY (domain)
);
CREATE INDEX IF NOT EXISTS idx_sender_bcc_domain_bcc_address ON sender_bcc_domain (bcc_address);
CREATE INDEX IF NOT EXISTS idx_sender_bcc_domain_expired ON sender_bcc_domain (expired);
CREATE INDEX IF NOT EXISTS idx_sender_bcc_domain_active ON sender_bcc_domain (active);

CREATE TABLE IF NOT EXISTS recipient_bcc_domain (
    domain      VARCHAR(255) NOT NULL DEFAULT '',
    bcc_address VARCHAR(255) NOT NULL DEFAULT '',
    created     TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    modified    TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT NOW(),
    expired     TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT '9999-12-31 01:01:01',
    active      INT2 NOT NULL DEFAULT 1,
    PRIMARY KEY (domain)
);
CREATE INDEX IF NOT EXISTS idx_recipient_bcc_domain_bcc_address ON recipient_bcc_domain (bcc_address);
CREATE INDEX IF NOT EXISTS idx_recipient_bcc_domain_expired ON recipient_bcc_domain (expired);
CREATE INDEX IF NOT EXISTS idx_recipient_bcc_domain_active ON recipient_bcc_domain (active);

-- Sender-dependent relay host; account is 'user@domain' or '@domain'.
CREATE TABLE IF NOT EXISTS sender_relayhost (
    id        SERIAL PRIMARY KEY,
    account   VARCHAR(255) NOT NULL DEFAULT '',
    relayhost VARCHAR(255) NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_sender_relayhost_account ON sender_relayhost (account);

-- Mailboxes waiting for the hourly cleanup job to remove them from disk.
-- maildir is the absolute path; a NULL delete_date means "keep".
CREATE TABLE IF NOT EXISTS deleted_mailboxes (
    id          SERIAL PRIMARY KEY,
    timestamp   TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    username    VARCHAR(255) NOT NULL DEFAULT '',
    domain      VARCHAR(255) NOT NULL DEFAULT '',
    maildir     VARCHAR(255) NOT NULL DEFAULT '',
    bytes       INT8 NOT NULL DEFAULT 0,
    messages    INT8 NOT NULL DEFAULT 0,
    admin       VARCHAR(255) NOT NULL DEFAULT '',
    delete_date DATE DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS idx_deleted_mailboxes_timestamp ON deleted_mailboxes (timestamp);
CREATE INDEX IF NOT EXISTS idx_deleted_mailboxes_username ON deleted_mailboxes (username);
CREATE INDEX IF NOT EXISTS idx_deleted_mailboxes_domain ON deleted_mailboxes (domain);
CREATE INDEX IF NOT EXISTS idx_deleted_mailboxes_admin ON deleted_mailboxes (admin);
CREATE INDEX IF NOT EXISTS idx_deleted_mailboxes_delete_date ON deleted_mailboxes (delete_date);

-- Written by Dovecot (quota dict). The trigger keeps `domain` in step with
-- the username, since Dovecot itself only sends username, bytes, messages.
CREATE TABLE IF NOT EXISTS used_quota (
    username VARCHAR(255) NOT NULL,
    bytes    INT8 NOT NULL DEFAULT 0,
    messages INT8 NOT NULL DEFAULT 0,
    domain   VARCHAR(255) NOT NULL DEFAULT '',
    PRIMARY KEY (username)
);
CREATE INDEX IF NOT EXISTS idx_used_quota_domain ON used_quota (domain);

CREATE OR REPLACE FUNCTION used_quota_set_domain() RETURNS TRIGGER AS $$
BEGIN
    NEW.domain := split_part(NEW.username, '@', 2);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE TRIGGER used_quota_set_domain
    BEFORE INSERT OR UPDATE OF username ON used_quota
    FOR EACH ROW EXECUTE FUNCTION used_quota_set_domain();

-- Written by Dovecot's last_login plugin: epoch seconds per protocol.
-- The PostgreSQL flavour keys it on (username, domain).
CREATE TABLE IF NOT EXISTS last_login (
    username VARCHAR(255) NOT NULL DEFAULT '',
    domain   VARCHAR(255) NOT NULL DEFAULT '',
    imap     INT8 DEFAULT NULL,
    pop3     INT8 DEFAULT NULL,
    lda      INT8 DEFAULT NULL,
    PRIMARY KEY (username, domain)
);
CREATE INDEX IF NOT EXISTS idx_last_login_domain ON last_login (domain);
CREATE INDEX IF NOT EXISTS idx_last_login_imap ON last_login (imap);
CREATE INDEX IF NOT EXISTS idx_last_login_pop3 ON last_login (pop3);
CREATE INDEX IF NOT EXISTS idx_last_login_lda ON last_login (lda);

-- IMAP shared folders (Dovecot ACL dict).
CREATE TABLE IF NOT EXISTS share_folder (
    from_user VARCHAR(255) NOT NULL,
    to_user   VARCHAR(255) NOT NULL,
    dummy     CHAR(1),
    PRIMARY KEY (from_user, to_user)
);
CREATE INDEX IF NOT EXISTS idx_share_folder_from_user ON share_folder (from_user);
CREATE INDEX IF NOT EXISTS idx_share_folder_to_user ON share_folder (to_user);

CREATE TABLE IF NOT EXISTS anyone_shares (
    from_user VARCHAR(255) NOT NULL,
    dummy     CHAR(1),
    PRIMARY KEY (from_user)
);
