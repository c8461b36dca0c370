"""The file outbox: one JSON file per notice, atomic, idempotent, no addresses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from billstate_notifications.channels import Channel, ChannelError, OutboxChannel
from billstate_notifications.domain import Rendered


def rendered() -> Rendered:
    return Rendered(
        subject="逾期付款通知",
        text="Dear Contoso,\n",
        html="<p>Dear Contoso,</p>\n",
        kind="overdue",
        audience="customer",
        locale="zh-TW",
        template="overdue",
        customer_id="contoso",
    )


def names(folder: Path) -> list[str]:
    """The entries of a folder, temporary files included."""
    return [p.name for p in folder.iterdir()]


def test_is_a_channel(tmp_path: Path) -> None:
    assert isinstance(OutboxChannel(tmp_path), Channel)
    assert OutboxChannel(tmp_path).name == "outbox"


async def test_writes_one_json_file_per_notice(tmp_path: Path) -> None:
    outbox = OutboxChannel(tmp_path / "outbox")
    await outbox.deliver("ntc-1", "customer", "ap@contoso.example", rendered())
    document = json.loads((tmp_path / "outbox" / "ntc-1.json").read_text("utf-8"))
    assert document == {
        "notice_id": "ntc-1",
        "kind": "overdue",
        "audience": "customer",
        "locale": "zh-TW",
        "customer_id": "contoso",
        "subject": "逾期付款通知",
        "text": "Dear Contoso,\n",
        "html": "<p>Dear Contoso,</p>\n",
    }
    raw = (tmp_path / "outbox" / "ntc-1.json").read_text("utf-8")
    assert "@" not in raw  # the address is for mail channels, never written here
    assert "逾期" in raw  # readable UTF-8, not \\u escapes


async def test_delivering_twice_leaves_one_identical_file_and_no_temp_files(
    tmp_path: Path,
) -> None:
    outbox = OutboxChannel(tmp_path)
    await outbox.deliver("ntc-1", "customer", None, rendered())
    first = (tmp_path / "ntc-1.json").stat()
    await outbox.deliver("ntc-1", "customer", None, rendered())
    assert names(tmp_path) == ["ntc-1.json"]
    assert (tmp_path / "ntc-1.json").stat().st_mtime_ns == first.st_mtime_ns


@pytest.mark.parametrize("notice_id", ["../escape", "a/b", ".hidden", "x" * 200])
async def test_ids_unsafe_as_file_names_are_refused_for_good(
    tmp_path: Path, notice_id: str
) -> None:
    with pytest.raises(ChannelError) as err:
        await OutboxChannel(tmp_path / "o").deliver(notice_id, "customer", None, rendered())
    assert err.value.retryable is False
    assert not (tmp_path / "escape.json").exists()


async def test_unwritable_outbox_is_a_retryable_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ChannelError) as err:
        await OutboxChannel(blocker / "outbox").deliver("ntc-1", "customer", None, rendered())
    assert err.value.retryable is True
