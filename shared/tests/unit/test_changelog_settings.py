"""The table changelog is created compactable; standby replicas only when asked."""

from __future__ import annotations

from pathlib import Path

from billstate_shared.runtime.faustkit import acked_table, make_app


def test_changelog_has_segments_the_cleaner_can_compact(tmp_path: Path) -> None:
    app = make_app("t-changelog", "127.0.0.1:1", tmp_path)
    topic = acked_table(app, "books", partitions=8).changelog_topic
    assert topic.compacting
    assert topic.config == {
        "segment.bytes": str(16 * 1024 * 1024),
        "segment.ms": str(3600 * 1000),
        "min.cleanable.dirty.ratio": "0.1",
    }


def test_standby_replicas_off_unless_asked(tmp_path: Path) -> None:
    assert make_app("t-one", "127.0.0.1:1", tmp_path / "a").conf.table_standby_replicas == 0
    app = make_app("t-two", "127.0.0.1:1", tmp_path / "b", standby_replicas=1)
    assert app.conf.table_standby_replicas == 1
