-- iRedAdmin's own database (`iredadmin`) for MariaDB/MySQL, reduced to what
-- the lab needs: the bookkeeping tables that iRedMail keeps there, and not in
-- a `vmail` database, when the accounts live in OpenLDAP (see
-- shared/reference/iredmail.md, "Bookkeeping tables" and §3.3). The table and
-- column names, types and defaults are iRedAdmin's; the DDL is the project's.
--
-- Load into an existing utf8mb4 database: mariadb iredadmin < this-file.
-- Idempotent, so 'lab up' applies it to a running lab as well as a new one.

SET NAMES utf8mb4;

-- Mailboxes of deleted accounts, waiting for iRedMail's hourly
-- tools/delete_mailboxes.py to remove them from disk on `delete_date`
-- (NULL: kept until an administrator decides). `maildir` is absolute.
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

-- Dovecot's quota dict on an OpenLDAP server writes here; iRedAdmin drops a
-- deleted user's row. The trigger derives `domain`, which Dovecot never sends.
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
