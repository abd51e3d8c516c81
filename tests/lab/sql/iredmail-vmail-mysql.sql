-- iRedMail's `vmail` mail-account database for MariaDB/MySQL, as the lab
-- needs it: the project's own DDL, with the table names, column names, types,
-- defaults and keys of iRedMail 1.8.x (see shared/reference/iredmail.md §2).
--
-- Load into an existing utf8mb4 database: mariadb vmail < this-file.
-- Idempotent (IF NOT EXISTS everywhere), so it can be applied on every start.
--
-- As upstream, `mailbox.storagebasedirectory` and `mailbox.storagenode`
-- default to ''; an installation rewrites these defaults to its storage path
-- (iRedMail: /var/vmail and vmail1), and so does the lab.
--
-- Conventions kept from iRedMail: booleans are TINYINT(1); `created` and
-- `modified` default to '1970-01-01 01:01:01' (writers set them explicitly);
-- `expired` defaults to '9999-12-31 00:00:00'; `active` defaults to 1.

SET NAMES utf8mb4;

-- Hosted mail domains.
CREATE TABLE IF NOT EXISTS `domain` (
    `domain` VARCHAR(255) NOT NULL DEFAULT '',
    `description` TEXT,
    `disclaimer` TEXT,
    `aliases` INT(10) NOT NULL DEFAULT 0,
    `mailboxes` INT(10) NOT NULL DEFAULT 0,
    `maillists` INT(10) NOT NULL DEFAULT 0,
    `maxquota` BIGINT(20) NOT NULL DEFAULT 0,
    `quota` BIGINT(20) NOT NULL DEFAULT 0,
    `transport` VARCHAR(255) NOT NULL DEFAULT 'dovecot',
    `backupmx` TINYINT(1) NOT NULL DEFAULT 0,
    `settings` TEXT,
    `created` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `modified` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `expired` DATETIME NOT NULL DEFAULT '9999-12-31 00:00:00',
    `active` TINYINT(1) NOT NULL DEFAULT 1,
    PRIMARY KEY (`domain`),
    INDEX (`backupmx`),
    INDEX (`expired`),
    INDEX (`active`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Mail to user@alias_domain is handled as user@target_domain.
CREATE TABLE IF NOT EXISTS `alias_domain` (
    `alias_domain` VARCHAR(255) NOT NULL,
    `target_domain` VARCHAR(255) NOT NULL,
    `created` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `modified` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `active` TINYINT(1) NOT NULL DEFAULT 1,
    PRIMARY KEY (`alias_domain`),
    INDEX (`target_domain`),
    INDEX (`active`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Mail users. Dovecot's home is storagebasedirectory/storagenode/maildir;
-- each enable<service><suffix> column gates one Dovecot service (%Ls%Lc).
CREATE TABLE IF NOT EXISTS `mailbox` (
    `username` VARCHAR(255) NOT NULL DEFAULT '',
    `password` VARCHAR(255) NOT NULL DEFAULT '',
    `name` VARCHAR(255) NOT NULL DEFAULT '',
    `first_name` VARCHAR(255) NOT NULL DEFAULT '',
    `last_name` VARCHAR(255) NOT NULL DEFAULT '',
    `mobile` VARCHAR(255) NOT NULL DEFAULT '',
    `telephone` VARCHAR(255) NOT NULL DEFAULT '',
    `recovery_email` VARCHAR(255) NOT NULL DEFAULT '',
    `birthday` DATE NOT NULL DEFAULT '0001-01-01',
    `language` VARCHAR(5) NOT NULL DEFAULT '',
    `mailboxformat` VARCHAR(50) NOT NULL DEFAULT 'maildir',
    `mailboxfolder` VARCHAR(50) NOT NULL DEFAULT 'Maildir',
    `storagebasedirectory` VARCHAR(255) NOT NULL DEFAULT '',
    `storagenode` VARCHAR(255) NOT NULL DEFAULT '',
    `maildir` VARCHAR(255) NOT NULL DEFAULT '',
    -- MB; 0 means unlimited.
    `quota` BIGINT(20) NOT NULL DEFAULT 0,
    `domain` VARCHAR(255) NOT NULL DEFAULT '',
    `transport` VARCHAR(255) NOT NULL DEFAULT '',
    `department` VARCHAR(255) NOT NULL DEFAULT '',
    `rank` VARCHAR(255) NOT NULL DEFAULT 'normal',
    `employeeid` VARCHAR(255) DEFAULT '',
    `isadmin` TINYINT(1) NOT NULL DEFAULT 0,
    `isglobaladmin` TINYINT(1) NOT NULL DEFAULT 0,
    `enablesmtp` TINYINT(1) NOT NULL DEFAULT 1,
    `enablesmtpsecured` TINYINT(1) NOT NULL DEFAULT 1,
    `enablepop3` TINYINT(1) NOT NULL DEFAULT 1,
    `enablepop3secured` TINYINT(1) NOT NULL DEFAULT 1,
    `enablepop3tls` TINYINT(1) NOT NULL DEFAULT 1,
    `enableimap` TINYINT(1) NOT NULL DEFAULT 1,
    `enableimapsecured` TINYINT(1) NOT NULL DEFAULT 1,
    `enableimaptls` TINYINT(1) NOT NULL DEFAULT 1,
    `enabledeliver` TINYINT(1) NOT NULL DEFAULT 1,
    `enablelda` TINYINT(1) NOT NULL DEFAULT 1,
    `enablemanagesieve` TINYINT(1) NOT NULL DEFAULT 1,
    `enablemanagesievesecured` TINYINT(1) NOT NULL DEFAULT 1,
    `enablesieve` TINYINT(1) NOT NULL DEFAULT 1,
    `enablesievesecured` TINYINT(1) NOT NULL DEFAULT 1,
    `enablesievetls` TINYINT(1) NOT NULL DEFAULT 1,
    `enableinternal` TINYINT(1) NOT NULL DEFAULT 1,
    `enabledoveadm` TINYINT(1) NOT NULL DEFAULT 1,
    `enablelib-storage` TINYINT(1) NOT NULL DEFAULT 1,
    `enablequota-status` TINYINT(1) NOT NULL DEFAULT 1,
    `enableindexer-worker` TINYINT(1) NOT NULL DEFAULT 1,
    `enablelmtp` TINYINT(1) NOT NULL DEFAULT 1,
    `enabledsync` TINYINT(1) NOT NULL DEFAULT 1,
    `enablesogo` TINYINT(1) NOT NULL DEFAULT 1,
    `enablesogowebmail` CHAR(1) NOT NULL DEFAULT 'y',
    `enablesogocalendar` CHAR(1) NOT NULL DEFAULT 'y',
    `enablesogoactivesync` CHAR(1) NOT NULL DEFAULT 'y',
    -- Comma-separated networks allowed to log in; NULL when unrestricted.
    `allow_nets` TEXT DEFAULT NULL,
    `disclaimer` TEXT,
    `settings` TEXT,
    `passwordlastchange` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `created` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `modified` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `expired` DATETIME NOT NULL DEFAULT '9999-12-31 00:00:00',
    `active` TINYINT(1) NOT NULL DEFAULT 1,
    PRIMARY KEY (`username`),
    INDEX (`domain`),
    INDEX (`department`),
    INDEX (`employeeid`),
    INDEX (`isadmin`),
    INDEX (`isglobaladmin`),
    INDEX (`enablesmtp`),
    INDEX (`enablesmtpsecured`),
    INDEX (`enablepop3`),
    INDEX (`enablepop3secured`),
    INDEX (`enablepop3tls`),
    INDEX (`enableimap`),
    INDEX (`enableimapsecured`),
    INDEX (`enableimaptls`),
    INDEX (`enabledeliver`),
    INDEX (`enablelda`),
    INDEX (`enablemanagesieve`),
    INDEX (`enablemanagesievesecured`),
    INDEX (`enablesieve`),
    INDEX (`enablesievesecured`),
    INDEX (`enablesievetls`),
    INDEX (`enableinternal`),
    INDEX (`enabledoveadm`),
    INDEX (`enablelib-storage`),
    INDEX (`enablequota-status`),
    INDEX (`enableindexer-worker`),
    INDEX (`enablelmtp`),
    INDEX (`enabledsync`),
    INDEX (`enablesogo`),
    INDEX (`passwordlastchange`),
    INDEX (`expired`),
    INDEX (`active`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Every address -> destination mapping Postfix resolves: a mailbox's self
-- row (is_forwarding=1), per-user forwardings, per-user alias addresses
-- (is_alias=1), members of mail aliases (is_list=1), catch-alls (address is
-- a bare domain).
CREATE TABLE IF NOT EXISTS `forwardings` (
    `id` BIGINT(20) UNSIGNED AUTO_INCREMENT,
    `address` VARCHAR(255) NOT NULL DEFAULT '',
    `forwarding` VARCHAR(255) NOT NULL DEFAULT '',
    `domain` VARCHAR(255) NOT NULL DEFAULT '',
    `dest_domain` VARCHAR(255) NOT NULL DEFAULT '',
    `is_maillist` TINYINT(1) NOT NULL DEFAULT 0,
    `is_list` TINYINT(1) NOT NULL DEFAULT 0,
    `is_forwarding` TINYINT(1) NOT NULL DEFAULT 0,
    `is_alias` TINYINT(1) NOT NULL DEFAULT 0,
    `active` TINYINT(1) NOT NULL DEFAULT 1,
    PRIMARY KEY (`id`),
    UNIQUE INDEX (`address`, `forwarding`),
    INDEX (`forwarding`),
    INDEX (`domain`),
    INDEX (`dest_domain`),
    INDEX (`is_maillist`),
    INDEX (`is_list`),
    INDEX (`is_alias`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Mail alias accounts (groups). Members live in `forwardings` (is_list=1).
CREATE TABLE IF NOT EXISTS `alias` (
    `address` VARCHAR(255) NOT NULL DEFAULT '',
    `name` VARCHAR(255) NOT NULL DEFAULT '',
    `accesspolicy` VARCHAR(30) NOT NULL DEFAULT '',
    `domain` VARCHAR(255) NOT NULL DEFAULT '',
    `created` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `modified` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `expired` DATETIME NOT NULL DEFAULT '9999-12-31 00:00:00',
    `active` TINYINT(1) NOT NULL DEFAULT 1,
    PRIMARY KEY (`address`),
    INDEX (`domain`),
    INDEX (`expired`),
    INDEX (`active`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Moderators of mail aliases and lists; `moderator` may be `*@domain`.
CREATE TABLE IF NOT EXISTS `moderators` (
    `id` BIGINT(20) UNSIGNED AUTO_INCREMENT,
    `address` VARCHAR(255) NOT NULL DEFAULT '',
    `moderator` VARCHAR(255) NOT NULL DEFAULT '',
    `domain` VARCHAR(255) NOT NULL DEFAULT '',
    `dest_domain` VARCHAR(255) NOT NULL DEFAULT '',
    PRIMARY KEY (`id`),
    UNIQUE INDEX (`address`, `moderator`),
    INDEX (`domain`),
    INDEX (`dest_domain`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- mlmmj mailing lists.
CREATE TABLE IF NOT EXISTS `maillists` (
    `id` BIGINT(20) UNSIGNED AUTO_INCREMENT,
    `address` VARCHAR(255) NOT NULL DEFAULT '',
    `domain` VARCHAR(255) NOT NULL DEFAULT '',
    `transport` VARCHAR(255) NOT NULL DEFAULT '',
    `accesspolicy` VARCHAR(30) NOT NULL DEFAULT '',
    `maxmsgsize` BIGINT(20) NOT NULL DEFAULT 0,
    `name` VARCHAR(255) NOT NULL DEFAULT '',
    `description` TEXT,
    -- Server-wide unique list id (a UUID).
    `mlid` VARCHAR(36) NOT NULL DEFAULT '',
    `is_newsletter` TINYINT(1) NOT NULL DEFAULT 0,
    `settings` TEXT,
    `created` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `modified` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `expired` DATETIME NOT NULL DEFAULT '9999-12-31 00:00:00',
    `active` TINYINT(1) NOT NULL DEFAULT 1,
    PRIMARY KEY (`id`),
    UNIQUE INDEX (`address`),
    UNIQUE INDEX (`mlid`),
    INDEX (`is_newsletter`),
    INDEX (`domain`),
    INDEX (`expired`),
    INDEX (`active`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `maillist_owners` (
    `id` BIGINT(20) UNSIGNED AUTO_INCREMENT,
    `address` VARCHAR(255) NOT NULL DEFAULT '',
    `owner` VARCHAR(255) NOT NULL DEFAULT '',
    `domain` VARCHAR(255) NOT NULL DEFAULT '',
    `dest_domain` VARCHAR(255) NOT NULL DEFAULT '',
    PRIMARY KEY (`id`),
    UNIQUE INDEX (`address`, `owner`),
    INDEX (`owner`),
    INDEX (`domain`),
    INDEX (`dest_domain`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Domain administrators; domain 'ALL' marks a global admin. ASCII columns,
-- as upstream, keep the two-column primary key short.
CREATE TABLE IF NOT EXISTS `domain_admins` (
    `username` VARCHAR(255) CHARACTER SET ascii NOT NULL DEFAULT '',
    `domain` VARCHAR(255) CHARACTER SET ascii NOT NULL DEFAULT '',
    `created` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `modified` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `expired` DATETIME NOT NULL DEFAULT '9999-12-31 00:00:00',
    `active` TINYINT(1) NOT NULL DEFAULT 1,
    PRIMARY KEY (`username`, `domain`),
    INDEX (`username`),
    INDEX (`domain`),
    INDEX (`expired`),
    INDEX (`active`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Standalone admin accounts (not mailboxes).
CREATE TABLE IF NOT EXISTS `admin` (
    `username` VARCHAR(255) NOT NULL DEFAULT '',
    `password` VARCHAR(255) NOT NULL DEFAULT '',
    `name` VARCHAR(255) NOT NULL DEFAULT '',
    `language` VARCHAR(5) NOT NULL DEFAULT '',
    `passwordlastchange` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `settings` TEXT,
    `created` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `modified` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `expired` DATETIME NOT NULL DEFAULT '9999-12-31 00:00:00',
    `active` TINYINT(1) NOT NULL DEFAULT 1,
    PRIMARY KEY (`username`),
    INDEX (`passwordlastchange`),
    INDEX (`expired`),
    INDEX (`active`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Per-user and per-domain BCC.
CREATE TABLE IF NOT EXISTS `sender_bcc_user` (
    `username` VARCHAR(255) NOT NULL DEFAULT '',
    `bcc_address` VARCHAR(255) NOT NULL DEFAULT '',
    `domain` VARCHAR(255) NOT NULL DEFAULT '',
    `created` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `modified` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `expired` DATETIME NOT NULL DEFAULT '9999-12-31 00:00:00',
    `active` TINYINT(1) NOT NULL DEFAULT 1,
    PRIMARY KEY (`username`),
    INDEX (`bcc_address`),
    INDEX (`domain`),
    INDEX (`expired`),
    INDEX (`active`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `recipient_bcc_user` (
    `username` VARCHAR(255) NOT NULL DEFAULT '',
    `bcc_address` VARCHAR(255) NOT NULL DEFAULT '',
    `domain` VARCHAR(255) NOT NULL DEFAULT '',
    `created` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `modified` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `expired` DATETIME NOT NULL DEFAULT '9999-12-31 00:00:00',
    `active` TINYINT(1) NOT NULL DEFAULT 1,
    PRIMARY KEY (`username`),
    INDEX (`bcc_address`),
    INDEX (`domain`),
    INDEX (`expired`),
    INDEX (`active`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `sender_bcc_domain` (
    `domain` VARCHAR(255) NOT NULL DEFAULT '',
    `bcc_address` VARCHAR(255) NOT NULL DEFAULT '',
    `created` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `modified` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `expired` DATETIME NOT NULL DEFAULT '9999-12-31 00:00:00',
    `active` TINYINT(1) NOT NULL DEFAULT 1,
    PRIMARY KEY (`domain`),
    INDEX (`bcc_address`),
    INDEX (`expired`),
    INDEX (`active`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `recipient_bcc_domain` (
    `domain` VARCHAR(255) NOT NULL DEFAULT '',
    `bcc_address` VARCHAR(255) NOT NULL DEFAULT '',
    `created` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `modified` DATETIME NOT NULL DEFAULT '1970-01-01 01:01:01',
    `expired` DATETIME NOT NULL DEFAULT '9999-12-31 00:00:00',
    `active` TINYINT(1) NOT NULL DEFAULT 1,
    PRIMARY KEY (`domain`),
    INDEX (`bcc_address`),
    INDEX (`expired`),
    INDEX (`active`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Per-sender relay host; `account` is user@domain or @domain.
CREATE TABLE IF NOT EXISTS `sender_relayhost` (
    `id` BIGINT(20) UNSIGNED AUTO_INCREMENT,
    `account` VARCHAR(255) NOT NULL DEFAULT '',
    `relayhost` VARCHAR(255) NOT NULL DEFAULT '',
    PRIMARY KEY (`id`),
    UNIQUE INDEX (`account`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Mailboxes waiting for removal from disk by iRedMail's hourly cron job;
-- `maildir` is absolute, a NULL `delete_date` means keep.
CREATE TABLE IF NOT EXISTS `deleted_mailboxes` (
    `id` BIGINT(20) UNSIGNED AUTO_INCREMENT,
    `timestamp` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    `username` VARCHAR(255) NOT NULL DEFAULT '',
    `domain` VARCHAR(255) NOT NULL DEFAULT '',
    `maildir` VARCHAR(255) NOT NULL DEFAULT '',
    `bytes` BIGINT(20) NOT NULL DEFAULT 0,
    `messages` BIGINT(20) NOT NULL DEFAULT 0,
    `admin` VARCHAR(255) NOT NULL DEFAULT '',
    `delete_date` DATE DEFAULT NULL,
    KEY `id` (`id`),
    INDEX (`timestamp`),
    INDEX (`username`),
    INDEX (`domain`),
    INDEX (`admin`),
    INDEX (`delete_date`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- Written by Dovecot's quota dict; `domain` is filled by the trigger below.
CREATE TABLE IF NOT EXISTS `used_quota` (
    `username` VARCHAR(255) NOT NULL,
    `bytes` BIGINT(20) NOT NULL DEFAULT 0,
    `messages` BIGINT(20) NOT NULL DEFAULT 0,
    `domain` VARCHAR(255) NOT NULL DEFAULT '',
    PRIMARY KEY (`username`),
    INDEX (`domain`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TRIGGER IF NOT EXISTS `used_quota_before_insert`
    BEFORE INSERT ON `used_quota` FOR EACH ROW
    SET NEW.domain = SUBSTRING_INDEX(NEW.username, '@', -1);

-- Written by Dovecot's last_login plugin (epoch seconds per protocol).
CREATE TABLE IF NOT EXISTS `last_login` (
    `username` VARCHAR(255) NOT NULL DEFAULT '',
    `domain` VARCHAR(255) NOT NULL DEFAULT '',
    `imap` INT(11) DEFAULT NULL,
    `pop3` INT(11) DEFAULT NULL,
    `lda` INT(11) DEFAULT NULL,
    PRIMARY KEY (`username`),
    INDEX (`domain`),
    INDEX (`imap`),
    INDEX (`pop3`),
    INDEX (`lda`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

-- IMAP shared folders (Dovecot ACL dict).
CREATE TABLE IF NOT EXISTS `share_folder` (
    `from_user` VARCHAR(255) CHARACTER SET ascii NOT NULL,
    `to_user` VARCHAR(255) CHARACTER SET ascii NOT NULL,
    `dummy` CHAR(1),
    PRIMARY KEY (`from_user`, `to_user`),
    INDEX (`from_user`),
    INDEX (`to_user`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;

CREATE TABLE IF NOT EXISTS `anyone_shares` (
    `from_user` VARCHAR(255) NOT NULL,
    `dummy` CHAR(1),
    PRIMARY KEY (`from_user`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
