"""Rule 12, word for word: every `why` of a fixed story, compared to tests/golden/why.json.

The story, on policies/standard.yaml: INV-1 (USD 100.00, due 11-01, sub-A) and INV-2 (USD
30.00, due 11-10, sub-B); reminders, overdue 11-02, final_notice 11-15, suspended 11-22; a
partial payment on 11-23 pays INV-1 and part of INV-2 (down to overdue, both restored);
final_notice again on 11-24 (INV-2's day 14); the rest paid that day (down to current).

After a deliberate change of wording: `BILLSTATE_UPDATE_GOLDEN=1 uv run pytest <this file>`,
then review the diff of the golden file like code.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from scenario import Story, run

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "why.json"
UPDATE = os.environ.get("BILLSTATE_UPDATE_GOLDEN") == "1"


def whys() -> str:
    s = Story()
    r = run(
        s.upsert(subs=["sub-A", "sub-B"]),
        s.issue("INV-1", "100.00", "2026-11-01", subs=["sub-A"]),
        s.issue("INV-2", "30.00", "2026-11-10", subs=["sub-B"]),
        s.days("2026-10-20", "2026-11-23"),
        s.pay("PAY-1", "110.00"),
        s.tick("2026-11-24"),
        s.pay("PAY-2", "20.00"),
    )
    assert [n.data.kind for n in r.notices()] == [
        "reminder",  # INV-1, 7 days before
        "reminder",  # INV-1, 1 day before
        "overdue",
        "reminder",  # INV-2, 7 days before
        "reminder",  # INV-2, 1 day before
        "final_notice",
        "final_notice",
        "suspended",
        "suspended",
        "restored",  # the partial payment: INV-2 alone is 13 days past due
        "final_notice",  # 11-24: INV-2 reaches day 14
        "final_notice",
    ]
    listed = [e.data.why.model_dump(mode="json") for e in r.entered()]
    return json.dumps(listed, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_rule_12_every_why_matches_the_golden_file() -> None:
    text = whys()
    if UPDATE:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    assert GOLDEN.exists(), f"{GOLDEN} is missing; run with BILLSTATE_UPDATE_GOLDEN=1"
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_the_golden_story_covers_every_kind_of_decision() -> None:
    listed = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert [why["rule"] for why in listed] == [
        "rule 6: forward on time",
        "rule 6: forward on time",
        "rule 6: forward on time",
        "rule 7: backward at once",
        "rule 6: forward on time",
        "rule 7: backward at once",
    ]
    for why in listed:
        assert why["policy"] == {"name": "standard", "version": 3}
