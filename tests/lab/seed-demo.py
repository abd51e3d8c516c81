#!/usr/bin/env python3
"""Put a small demo organisation into the lab AD (idempotent).

OU=Demo holds people whose addresses are under the lab's mail domain, one
disabled user, one outside the domain and one without an address, so the
demo shows every path: created, disabled, skipped.
"""

import ssl
import sys

import ldap3
from labenv import read_env  # this script's own directory

PEOPLE = [
    # cn, local part or full UPN, given name, surname, title, disabled
    ("Alice Martin", "alice.martin", "Alice", "Martin", "Engineer", False),
    ("Bob Stone", "bob.stone", "Bob", "Stone", "Sales", False),
    ("Chloe Park", "chloe.park", "Chloe", "Park", "Finance", False),
    ("Dan Ortiz", "dan.ortiz", "Dan", "Ortiz", "Former staff", True),
    ("Erin Field", "erin.field@partner.example.org", "Erin", "Field", "Contractor", False),
    ("Lobby Printer", None, None, None, None, False),
]


def main():
    env = read_env()
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=env["AD_CA_CERT"])
    server = ldap3.Server("localhost", port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, env["AD_ADMIN_DN"], env["AD_ADMIN_PASSWORD"], auto_bind=True)
    ou = "OU=Demo,%s" % env["AD_BASE_DN"]
    if not conn.search(ou, "(objectClass=*)", ldap3.BASE):
        conn.add(ou, ["top", "organizationalUnit"])
    for index, (cn, upn, given, surname, title, disabled) in enumerate(PEOPLE):
        dn = "CN=%s,%s" % (cn, ou)
        if conn.search(dn, "(objectClass=*)", ldap3.BASE):
            continue
        attrs = {"sAMAccountName": "demo%02d" % index, "userAccountControl": 514, "displayName": cn}
        if upn:
            attrs["userPrincipalName"] = upn if "@" in upn else "%s@%s" % (upn, env["MAIL_DOMAIN"])
        for key, value in (("givenName", given), ("sn", surname), ("title", title)):
            if value:
                attrs[key] = value
        if not conn.add(dn, ["top", "person", "organizationalPerson", "user"], attrs):
            sys.exit("cannot add %s: %s" % (dn, conn.result))
        conn.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, ['"Demo-Passw0rd-%d"'.replace("%d", str(index))
                                                                 .encode("utf-16-le")])]})
        if not disabled:
            conn.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [512])]})
    print(ou)


if __name__ == "__main__":
    main()
