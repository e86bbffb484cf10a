"""The generic history mechanism on a throwaway table."""

from __future__ import annotations

import psycopg


def _setup(conn: psycopg.Connection) -> None:  # type: ignore[type-arg]
    conn.execute("CREATE TABLE public.thing (id int PRIMARY KEY, name text, synced_at timestamptz)")
    conn.execute("SELECT tether.enable_history('public.thing', ARRAY['synced_at'])")
    conn.commit()


def test_real_update_writes_old_version_with_record_time(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        _setup(conn)
        conn.execute("INSERT INTO thing VALUES (1, 'a', now())")
        conn.commit()
        conn.execute("SET tether.actor = 'test'")
        conn.execute("UPDATE thing SET name = 'b' WHERE id = 1")
        conn.commit()
        rows = conn.execute(
            "SELECT name, history_operation, replaced_by, upper(record_time) IS NOT NULL "
            "FROM thing_history"
        ).fetchall()
        assert rows == [("a", "UPDATE", "test", True)]


def test_noop_and_excluded_column_updates_write_no_history(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        _setup(conn)
        conn.execute("INSERT INTO thing VALUES (1, 'a', now())")
        conn.commit()
        before = conn.execute("SELECT recorded_at FROM thing").fetchone()
        conn.execute("UPDATE thing SET name = 'a'")
        conn.commit()
        conn.execute("UPDATE thing SET synced_at = now() + interval '1 hour'")
        conn.commit()
        assert conn.execute("SELECT count(*) FROM thing_history").fetchone() == (0,)
        assert conn.execute("SELECT recorded_at FROM thing").fetchone() == before


def test_delete_writes_history_and_ranges_chain(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        _setup(conn)
        conn.execute("INSERT INTO thing VALUES (1, 'a', now())")
        conn.commit()
        conn.execute("UPDATE thing SET name = 'b'")
        conn.commit()
        conn.execute("DELETE FROM thing")
        conn.commit()
        rows = conn.execute(
            "SELECT name, history_operation FROM thing_history ORDER BY history_id"
        ).fetchall()
        assert rows == [("a", "UPDATE"), ("b", "DELETE")]
        # the ranges chain: each version ends where the next one starts
        chained = conn.execute(
            "SELECT upper(a.record_time) = lower(b.record_time) FROM thing_history a, "
            "thing_history b WHERE a.name = 'a' AND b.name = 'b'"
        ).fetchone()
        assert chained == (True,)


def test_insert_and_update_in_one_transaction_keeps_no_invisible_version(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        _setup(conn)
        conn.execute("INSERT INTO thing VALUES (1, 'a', now())")
        conn.execute("UPDATE thing SET name = 'b'")
        conn.commit()
        assert conn.execute("SELECT count(*) FROM thing_history").fetchone() == (0,)
