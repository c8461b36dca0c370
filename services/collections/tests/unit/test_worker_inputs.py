"""The worker consumes exactly the topics the catalog says collections reads."""

from __future__ import annotations

from billstate_collections.entrypoints.worker import INPUTS
from billstate_shared.topics import group_inputs


def test_the_worker_subscribes_to_every_catalog_input_and_nothing_else() -> None:
    # A topic added to the catalog but not to INPUTS is never read: its records wait
    # forever and whoever settles on the group's lag (drive, demo, tests) times out.
    assert sorted(t.name for t in INPUTS) == sorted(t.name for t in group_inputs("collections"))
