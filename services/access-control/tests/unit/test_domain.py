"""The pure core: desired versus applied state, duplicates, and what a restore touches."""

from __future__ import annotations

from collections.abc import Collection

from billstate_access_control.domain import (
    Action,
    Command,
    CommandType,
    CustomerAccess,
    accept,
    applied,
    decide,
    settled,
)

CUSTOMER = "contoso"


def cmd(kind: CommandType, command_id: str, *subs: str) -> Command:
    return Command(CUSTOMER, kind, command_id, subs)


def suspend(command_id: str, *subs: str) -> Command:
    return cmd("access.suspend", command_id, *subs)


def restore(command_id: str, *subs: str) -> Command:
    return cmd("access.restore", command_id, *subs)


def run(
    state: CustomerAccess, command: Command, *, fail: Collection[str] = ()
) -> tuple[CustomerAccess, list[Action]]:
    """What the shell does: decide, accept, apply each action that the provider takes."""
    actions = decide(state, command)
    state = accept(state, command)
    for action in actions:
        if action.subscription_id not in fail:
            state = applied(
                state, action.subscription_id, action.desired, action.command_id, "builtin"
            )
    return state, actions


def test_suspend_asks_for_one_call_per_subscription() -> None:
    state, actions = run(CustomerAccess(CUSTOMER), suspend("c1", "s1", "s2"))
    assert actions == [Action("s1", "suspended", "c1"), Action("s2", "suspended", "c1")]
    for sid in ("s1", "s2"):
        sub = state.subscription(sid)
        assert (sub.desired, sub.applied, sub.command_id, sub.provider) == (
            "suspended",
            "suspended",
            "c1",
            "builtin",
        )


def test_a_command_seen_before_changes_nothing() -> None:
    state, _ = run(CustomerAccess(CUSTOMER), suspend("c1", "s1"))
    again = accept(state, suspend("c1", "s1"))
    assert again == state
    assert decide(state, suspend("c1", "s1")) == []


def test_suspend_twice_is_suspended_once() -> None:
    state, _ = run(CustomerAccess(CUSTOMER), suspend("c1", "s1"))
    state, actions = run(state, suspend("c2", "s1"))
    assert actions == []
    assert state.subscription("s1").desired == "suspended"
    assert state.subscription("s1").command_id == "c2"  # the latest command wants it


def test_a_subscription_named_twice_in_one_command_is_called_once() -> None:
    _, actions = run(CustomerAccess(CUSTOMER), suspend("c1", "s1", "s1"))
    assert actions == [Action("s1", "suspended", "c1")]


def test_restore_touches_only_what_is_suspended() -> None:
    state, _ = run(CustomerAccess(CUSTOMER), suspend("c1", "s1"))
    state, actions = run(state, restore("r1", "s1", "s2"))
    assert actions == [Action("s1", "active", "r1")]
    assert state.subscription("s1").applied == "active"
    assert state.subscription("s2").applied == "active"


def test_a_subscription_never_touched_is_active() -> None:
    _, actions = run(CustomerAccess(CUSTOMER), restore("r1", "s1"))
    assert actions == []


def test_a_failed_call_leaves_the_gap_open() -> None:
    state, _ = run(CustomerAccess(CUSTOMER), suspend("c1", "s1", "s2"), fail={"s2"})
    assert state.subscription("s1").in_sync
    sub = state.subscription("s2")
    assert (sub.desired, sub.applied) == ("suspended", "active")


def test_a_redelivery_resumes_only_the_unfinished_work() -> None:
    command = suspend("c1", "s1", "s2")
    state, _ = run(CustomerAccess(CUSTOMER), command, fail={"s2"})
    assert decide(state, command) == [Action("s2", "suspended", "c1")]
    assert accept(state, command) == state


def test_a_stale_duplicate_does_not_undo_a_later_command() -> None:
    first = suspend("c1", "s1")
    state, _ = run(CustomerAccess(CUSTOMER), first)
    state, _ = run(state, restore("r1", "s1"))
    assert decide(state, first) == []
    assert settled(state, first) == []
    assert accept(state, first) == state
    assert state.subscription("s1").applied == "active"


def test_a_later_command_supersedes_an_unfinished_one() -> None:
    first = suspend("c1", "s1")
    state, _ = run(CustomerAccess(CUSTOMER), first, fail={"s1"})
    state, actions = run(state, restore("r1", "s1"))
    assert actions == []  # never suspended, so nothing to restore
    assert decide(state, first) == []  # and the old suspend is not resumed
    assert state.subscription("s1").desired == "active"


def test_settled_names_what_a_seen_command_already_applied() -> None:
    command = suspend("c1", "s1", "s2")
    assert settled(CustomerAccess(CUSTOMER), command) == []
    state, _ = run(CustomerAccess(CUSTOMER), command, fail={"s2"})
    assert settled(state, command) == [Action("s1", "suspended", "c1")]


def test_values_are_not_changed_in_place() -> None:
    empty = CustomerAccess(CUSTOMER)
    run(empty, suspend("c1", "s1"))
    assert empty.subscriptions == {}
    assert empty.seen == frozenset()
