#!/usr/bin/python3
"""Let one account list the domain's deleted objects, as an administrator would with
`dsacls "CN=Deleted Objects,DC=..." /G CORP\\mailsync:LCRP`.

Incremental replication then finds deleted users among the tombstones changed
since its last run instead of scanning every user. Idempotent. Runs with the
system python3 (Samba's bindings) on sam.ldb, with the DC running or not.

    delegate_deleted_objects.py SMB_CONF SAM_LDB_URL TRUSTEE_DN
"""

import sys

import ldb
from samba.auth import system_session
from samba.dcerpc import security
from samba.ndr import ndr_pack, ndr_unpack
from samba.param import LoadParm
from samba.samdb import SamDB

DELETED_OBJECTS_WKGUID = "18e2ea80684f11d2b9aa00c04f79f805"


def main(smb_conf, url, trustee_dn):
    lp = LoadParm()
    lp.load(smb_conf)
    db = SamDB(url=url, session_info=system_session(), lp=lp)
    domain_sid = security.dom_sid(db.get_domain_sid())
    trustee = db.search(base=trustee_dn, scope=ldb.SCOPE_BASE, attrs=["objectSid"])
    sid = ndr_unpack(security.dom_sid, trustee[0]["objectSid"][0])
    # The container is itself hidden without Show Deleted; sd_flags 4: the DACL only.
    controls = ["show_deleted:1", "sd_flags:1:4"]
    found = db.search(base="<WKGUID=%s,%s>" % (DELETED_OBJECTS_WKGUID, db.get_default_basedn()),
                      scope=ldb.SCOPE_BASE, attrs=["nTSecurityDescriptor"], controls=controls)
    sddl = ndr_unpack(security.descriptor, found[0]["nTSecurityDescriptor"][0]).as_sddl(domain_sid)
    # Compared in Samba's own rendering of the ACE (rights reordered: RPLC).
    ace = security.descriptor.from_sddl("D:(A;;LCRP;;;%s)" % sid, domain_sid).as_sddl(domain_sid)[2:]
    aces = sddl.split("(")
    if ace in sddl:
        if sddl.count(ace) == 1:
            return "already delegated"
        # an earlier, non-idempotent grant left duplicates: keep one
        sddl = aces[0] + "".join("(" + item for item in aces[1:] if "(" + item != ace) + ace
    else:
        sddl += ace
    message = ldb.Message(found[0].dn)
    message["nTSecurityDescriptor"] = ldb.MessageElement(
        ndr_pack(security.descriptor.from_sddl(sddl, domain_sid)), ldb.FLAG_MOD_REPLACE, "nTSecurityDescriptor")
    db.modify(message, controls=controls)
    return "delegated"


if __name__ == "__main__":
    print(main(*sys.argv[1:4]))
