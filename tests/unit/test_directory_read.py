"""Which group members an incremental run can name without reading them (pure logic)."""

from ansible_collections.mailsync.iredmail.plugins.module_utils.ad_reader import (
    DirectoryGroup,
    OutsideObject,
    claiming,
    dn_key,
    is_under,
    split_extended_dn,
)
from ansible_collections.mailsync.iredmail.plugins.module_utils.model import DirectoryUser
from ansible_collections.mailsync.iredmail.plugins.module_utils.replicate import DirectoryRead

GUID_A = "083f1a07-f21f-494c-a2b3-9f9071aeee0d"


def user(guid, dn):
    return DirectoryUser(guid, dn, None, False, {})


def test_members_resolve_by_guid_only_when_the_user_is_in_scope():
    read = DirectoryRead([user("read-1", "CN=Read,OU=S,DC=c")], None, "incremental", unread=["unread-1"])
    read.groups = [DirectoryGroup("g1", "CN=G,OU=S,DC=c", "g@example.com", "G",
                                  ["CN=Read,OU=S,DC=c", "CN=Quiet,OU=S,DC=c", "CN=Stranger,OU=X,DC=c"],
                                  {"cn=read,ou=s,dc=c": "read-1", "cn=quiet,ou=s,dc=c": "unread-1",
                                   "cn=stranger,ou=x,dc=c": "not-selected"})]
    read.outside = {"cn=nested,ou=x,dc=c": OutsideObject("CN=Nested,OU=X,DC=c", True, member_dns=["CN=Deep,OU=S,DC=c"],
                                                         member_guids={"cn=deep,ou=s,dc=c": "unread-1"})}
    assert read.in_scope() == {"read-1", "unread-1"}
    assert read.dn_to_guid() == {"cn=read,ou=s,dc=c": "read-1", "cn=quiet,ou=s,dc=c": "unread-1",
                                 "cn=deep,ou=s,dc=c": "unread-1"}


def test_a_scan_names_every_selected_user():
    read = DirectoryRead([], None, "incremental", unread={"p1": "CN=P1,DC=c"}, removals="scan",
                         present={"p1": "CN=P1,DC=c"})
    assert read.dn_to_guid() == {"cn=p1,dc=c": "p1"}


def test_extended_dns_and_scope_tests():
    assert split_extended_dn(b"<GUID=%s>;<SID=S-1-5-21-1-2-3-1105>;CN=Jane\\, Doe,OU=S,DC=c" % GUID_A.encode()) == (
        "CN=Jane\\, Doe,OU=S,DC=c", GUID_A)
    assert split_extended_dn("CN=Plain,DC=c") == ("CN=Plain,DC=c", None)
    assert dn_key("CN=Jane\\, Doe , OU = Staff,DC=Corp") == "cn=jane\\, doe,ou=staff,dc=corp"
    assert is_under("CN=x,OU=Staff,DC=corp", "ou=staff, dc=corp")
    assert is_under("OU=Staff,DC=corp", "OU=Staff,DC=corp")
    assert not is_under("CN=x,OU=NotStaff,DC=corp", "OU=Staff,DC=corp")
    assert not is_under("CN=x\\0ADEL:%s,CN=Deleted Objects,DC=corp" % GUID_A, "OU=Staff,DC=corp")


def test_the_users_claiming_group_addresses_are_found_by_mail_attribute_and_proxy_address():
    assert claiming("(objectClass=user)", "mail", ["a*(x)@example.com", "b@example.com"], True) == (
        "(&(objectClass=user)(|(mail=a\\2a\\28x\\29@example.com)(proxyAddresses=smtp:a\\2a\\28x\\29@example.com)"
        "(mail=b@example.com)(proxyAddresses=smtp:b@example.com)))")
    assert claiming("(objectClass=user)", "userPrincipalName", ["b@example.com"], False) == (
        "(&(objectClass=user)(|(userPrincipalName=b@example.com)))")
