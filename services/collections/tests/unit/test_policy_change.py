"""A policy change on a running worker: books keep their stage by name, a stage that is gone
moves by the new file's `migrate:` map (with a stage_entered whose why names the change), and
the start-up check refuses a change without a version bump or a needed mapping."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).parent))

from scenario import Story, make_policy, run, standard

from billstate_collections.domain.book_state import dump_book, load_book
from billstate_collections.domain.engine import step
from billstate_shared.contracts import AccessRestore, StageEntered
from billstate_shared.domain.policy import Accepted, Policy, digest, refuse_change
from billstate_shared.errors import Refused

SUSPENDED_AT = "2026-11-22"  # test_rules' running example: INV-1 due 11-01, unpaid


def _stages(*names: str, suspend: str = "suspended") -> list[dict[str, Any]]:
    days = {"overdue": 1, "warning": 7, "final_notice": 14, "suspended": 21, "blocked": 21}
    found: list[dict[str, Any]] = []
    for name in names:
        stage: dict[str, Any] = {"name": name, "days_past_due": days[name], "notify": ["customer"]}
        if name == suspend:
            stage.update(action="suspend", scope="overdue_subscriptions")
        found.append(stage)
    return found


def suspended_book(policy: Policy) -> Any:
    s = Story()
    r = run(
        s.upsert(subs=["sub-A"]),
        s.issue("INV-1", "100.00", "2026-11-01", subs=["sub-A"]),
        s.days("2026-10-25", SUSPENDED_AT),
        policy=policy,
    )
    return s, r.book()


def test_a_book_is_stored_with_its_stage_name_and_the_policy_version() -> None:
    _, book = suspended_book(standard())
    stored = dump_book(book, standard())
    assert (stored["stage"], stored["policy_version"]) == ("suspended", 3)
    assert load_book(json.loads(json.dumps(stored)), standard()).stage == 2


def test_a_stage_inserted_before_keeps_every_customer_where_it_was() -> None:
    _, book = suspended_book(standard())
    stored = dump_book(book, standard())
    v4 = make_policy(version=4, stages=_stages("overdue", "warning", "final_notice", "suspended"))
    again = load_book(stored, v4)
    assert v4.stages[again.stage].name == "suspended"
    assert again.moved is None


def test_a_renamed_stage_moves_by_migrate_and_the_why_names_the_change() -> None:
    s, book = suspended_book(standard())
    stored = dump_book(book, standard())
    v4 = make_policy(
        version=4,
        stages=_stages("overdue", "final_notice", "blocked", suspend="blocked"),
        migrate={"suspended": "blocked"},
    )
    moved = load_book(stored, v4)
    out = step(moved, s.tick("2026-11-23"), v4)
    entered = [o for o in out if o.event_type == "collections.stage_entered"]
    assert entered[0].data["previous"] == "suspended"
    assert entered[0].data["stage"] == "blocked"
    assert entered[0].data["why"]["rule"] == "policy change: migrate"
    assert (
        "Policy standard changed to v4 (from v3): stage suspended is not in it"
        in (entered[0].data["why"]["text"])
    )
    StageEntered.model_validate(entered[0].model().model_dump())
    assert moved.suspended == ("sub-A",)  # still the suspend stage: nothing given back
    assert not [o for o in out if o.event_type == "access.restore"]
    assert dump_book(moved, v4)["stage"] == "blocked"
    # Said once: the next event finds the book in its new stage.
    assert not [
        o for o in step(moved, s.tick("2026-11-24"), v4) if o.data.get("previous") == "suspended"
    ]


def test_a_migrate_below_the_suspend_stage_gives_access_back() -> None:
    s, book = suspended_book(standard())
    stored = dump_book(book, standard())
    v4 = make_policy(
        version=4, stages=_stages("overdue", "final_notice"), migrate={"suspended": "final_notice"}
    )
    moved = load_book(stored, v4)
    out = step(moved, s.tick("2026-11-23"), v4)
    (restore,) = [o.model() for o in out if o.event_type == "access.restore"]
    assert isinstance(restore, AccessRestore)
    assert restore.data.subscription_ids == ["sub-A"]
    assert moved.suspended == ()


def test_a_book_in_a_stage_the_policy_neither_has_nor_migrates_is_refused() -> None:
    _, book = suspended_book(standard())
    stored = dump_book(book, standard())
    v4 = make_policy(version=4, stages=_stages("overdue", "final_notice"))
    with pytest.raises(Refused, match="stage 'suspended', which policy standard v4 neither"):
        load_book(stored, v4)


def test_a_book_stored_by_position_loads_under_the_running_policy() -> None:
    _, book = suspended_book(standard())
    stored = dump_book(book, standard())
    stored["stage"] = 2
    del stored["policy_version"]
    assert load_book(stored, standard()).stage == 2


@pytest.mark.parametrize(
    ("migrate", "message"),
    [
        ({"overdue": "final_notice"}, "'overdue' is still a stage of this policy"),
        ({"gone": "nowhere"}, "'gone' goes to 'nowhere', which is not a stage"),
    ],
)
def test_a_broken_migrate_map_is_refused(migrate: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_policy(version=4, migrate=migrate)


# ---- the start-up check -------------------------------------------------------------------


def _accepted(policy: Policy) -> Accepted:
    name, version = policy.ref
    return Accepted(name, version, digest(policy), tuple(s.name for s in policy.stages))


def test_the_same_policy_again_and_a_first_start_are_accepted() -> None:
    assert refuse_change(None, standard()) is None
    assert refuse_change(_accepted(standard()), standard()) is None


def test_a_change_without_a_version_bump_is_refused() -> None:
    edited = make_policy(minimum_overdue={"USD": "9.00"})
    reason = refuse_change(_accepted(standard()), edited)
    assert reason is not None
    assert reason.startswith("the policy file changed but its version is still 3")


def test_an_older_version_is_refused() -> None:
    older = make_policy(version=2)
    reason = refuse_change(_accepted(standard()), older)
    assert reason is not None
    assert "version 2 is older than the running standard v3" in reason


def test_a_dropped_stage_needs_a_migrate_entry_named_in_the_refusal() -> None:
    v4 = make_policy(
        version=4, stages=_stages("overdue", "final_notice", "blocked", suspend="blocked")
    )
    reason = refuse_change(_accepted(standard()), v4)
    assert reason is not None
    assert "stages of the running standard v3 are not in version 4: suspended" in reason
    assert "(one of: current, overdue, final_notice, blocked)" in reason
    fixed = make_policy(
        version=4,
        stages=_stages("overdue", "final_notice", "blocked", suspend="blocked"),
        migrate={"suspended": "blocked"},
    )
    assert refuse_change(_accepted(standard()), fixed) is None


def test_the_digest_ignores_comments_and_key_order() -> None:
    assert digest(standard()) == digest(make_policy())
    assert digest(standard()) != digest(make_policy(version=4))
