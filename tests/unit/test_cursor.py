import datetime

from ansible_collections.mailsync.iredmail.plugins.module_utils.cursor import Cursor, settings_fingerprint

NOW = datetime.datetime(2026, 11, 28, 12, 0, 0)


def test_round_trip():
    cursor = Cursor("6a0b-guid", 5123, NOW, settings_fingerprint({"base_dn": "DC=x"}))
    assert Cursor.decode(cursor.encode()) == cursor


def test_removal_mode_round_trips_and_old_cursors_mean_a_scan():
    with_tombstones = Cursor("6a0b-guid", 5123, NOW, "fp", tombstones=True)
    decoded = Cursor.decode(with_tombstones.encode())
    assert decoded == with_tombstones and decoded.tombstones
    assert not Cursor.decode(Cursor("6a0b-guid", 5123, NOW, "fp").encode()).tombstones
    # written by an earlier version: four fields, read as "scan for removals"
    old = Cursor.decode("6a0b-guid;5123;2026-11-28T12:00:00;fp")
    assert old is not None and old.usn == 5123 and not old.tombstones
    assert Cursor.decode("6a0b-guid;5123;2026-11-28T12:00:00;fp;t;a@x.org;extra") is None


def test_contested_addresses_round_trip_and_too_many_become_unknown():
    contested = Cursor("6a0b-guid", 5123, NOW, "fp", True, ["b@example.com", "odd,one@example.com"])
    decoded = Cursor.decode(contested.encode())
    assert decoded == contested and decoded.contested == {"b@example.com", "odd,one@example.com"}
    # none contested: the cursor reads as it did before they were kept
    assert Cursor("6a0b-guid", 5123, NOW, "fp", True).encode() == "6a0b-guid;5123;2026-11-28T12:00:00;fp;t"
    assert Cursor.decode("6a0b-guid;5123;2026-11-28T12:00:00;fp;t").contested == frozenset()
    # more than the stores' 255 characters hold: unknown, so every group address is checked again
    many = Cursor("6a0b-guid", 5123, NOW, "fp", True, ["user%03d@example.com" % n for n in range(20)])
    assert len(many.encode()) <= 255 and Cursor.decode(many.encode()).contested is None


def test_unreadable_cursor_means_a_full_run():
    assert Cursor.decode("garbage") is None
    assert Cursor.decode("a;notanumber;2026-01-01T00:00:00;x") is None


def test_incremental_only_against_the_same_dc_settings_and_within_the_interval():
    fp = settings_fingerprint({"base_dn": "DC=x"})
    cursor = Cursor("dc-a", 10, NOW - datetime.timedelta(hours=2), fp)
    assert cursor.allows_incremental("dc-a", fp, NOW, 24)
    assert not cursor.allows_incremental("dc-b", fp, NOW, 24)
    assert not cursor.allows_incremental("dc-a", settings_fingerprint({"base_dn": "DC=y"}), NOW, 24)
    assert not cursor.allows_incremental("dc-a", fp, NOW, 1)


def test_fingerprint_ignores_key_order():
    assert settings_fingerprint({"a": 1, "b": [1, 2]}) == settings_fingerprint({"b": [1, 2], "a": 1})
