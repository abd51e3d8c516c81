import datetime

from ansible_collections.mailsync.iredmail.plugins.module_utils.cursor import Cursor, settings_fingerprint

NOW = datetime.datetime(2026, 11, 28, 12, 0, 0)


def test_round_trip():
    cursor = Cursor("6a0b-guid", 5123, NOW, settings_fingerprint({"base_dn": "DC=x"}))
    assert Cursor.decode(cursor.encode()) == cursor


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
