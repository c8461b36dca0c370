"""The monitoring component: alerts, runbook links, metrics and the dashboard match the code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests import kube

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "deploy" / "k8s" / "monitoring"
DASHBOARD = MONITORING / "billstate.json"
OPERATIONS = ROOT / "docs" / "operations.md"
RUNBOOK_BASE = "https://github.com/YOUR-ORG/billstate/blob/main/docs/operations.md#"
# Issue 16's list, and a service down or not ready.
REQUIRED = {
    "BillstateConsumerLag",
    "BillstateDeadLettersGrowing",
    "BillstateSuspensionsAwaitingApproval",
    "BillstateStalePaymentFeed",
    "BillstateProviderFailures",
    "BillstateAccessDrift",
    "BillstateClockStalled",
    "BillstateServiceDown",
    "BillstateServiceNotReady",
}
# Made by Prometheus (`up`) and kube-state-metrics, not by our code.
EXTERNAL = {"up", "kube_pod_status_ready"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}
DEFINED = re.compile(
    r"\b(Counter|Gauge|Histogram|GaugeMetricFamily)\(\s*\"(billstate_\w+)\"", re.MULTILINE
)
# PromQL words that are not metric names.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((MONITORING / "rules.yaml").read_text("utf-8"))
    return [rule for group in doc["spec"]["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text("utf-8"))
    return loaded


def _defined() -> dict[str, str]:
    """Every `billstate_*` metric the services and shared code define: name -> type."""
    found: dict[str, str] = {}
    sources = [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("shared/src/**/*.py")]
    for path in sources:
        for kind, name in DEFINED.findall(path.read_text("utf-8")):
            found[name] = {"GaugeMetricFamily": "gauge"}.get(kind, kind.lower())
    return found


def _series() -> set[str]:
    """The series names /metrics shows for the defined metrics (suffixes included)."""
    return {name + s for name, kind in _defined().items() for s in SUFFIXES[kind]}


def _metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once strings, label
    matchers, ranges, grouping clauses, functions, keywords and numbers are taken out."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    words = re.findall(r"(?<![\w.])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()", text)
    return {w for w in words if w.lower() not in KEYWORDS}


def _anchors() -> set[str]:
    """GitHub's anchors of the headings: lowercase, punctuation dropped, spaces to '-'."""
    headings = re.findall(r"^#+ (.+)$", OPERATIONS.read_text("utf-8"), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_alert_of_the_issue_is_there_and_says_how_bad_what_and_where_to_look() -> None:
    rules = _rules()
    assert {r["alert"] for r in rules} >= REQUIRED
    anchors = _anchors()
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        notes = rule["annotations"]
        assert len(notes["summary"]) > 20, name
        assert len(notes["description"]) > 60, name
        url = notes["runbook_url"]
        assert url.startswith(RUNBOOK_BASE), f"{name}: {url}"
        assert url.removeprefix(RUNBOOK_BASE) in anchors, f"{name}: no heading for {url}"


def test_the_anchor_rule_matches_githubs() -> None:
    assert "a-clock-tick-from-the-future" in _anchors()
    assert "why-was-i-suspended" in _anchors()  # quotes and '?' dropped


def test_alerts_and_panels_read_only_metrics_the_code_exports() -> None:
    series = _series() | EXTERNAL
    exprs = [r["expr"] for r in _rules()]
    exprs += [t["expr"] for p in _dashboard()["panels"] for t in p["targets"]]
    for expr in exprs:
        names = _metric_names(expr)
        assert names, expr
        assert names <= series, f"not exported: {sorted(names - series)} in {expr}"


def test_the_metric_name_reader_finds_names_not_functions_or_labels() -> None:
    expr = 'sum by (le) (rate(billstate_x_bucket{a="b c"}[5m])) / on(job) up > 36 * 3600'
    assert _metric_names(expr) == {"billstate_x_bucket", "up"}


def test_the_metrics_section_lists_every_metric() -> None:
    text = OPERATIONS.read_text("utf-8")
    section = text[text.index("## Metrics") : text.index("\n## ", text.index("## Metrics") + 1)]
    listed = set(re.findall(r"^\| `(billstate_\w+)` \|", section, re.MULTILINE))
    shown = {name + ("_total" if kind == "counter" else "") for name, kind in _defined().items()}
    assert shown == listed


def test_the_dashboard_has_its_panels_each_with_a_query_on_the_chosen_source() -> None:
    dash = _dashboard()
    assert dash["schemaVersion"] >= 39
    (var,) = dash["templating"]["list"]
    assert (var["name"], var["type"], var["query"]) == ("datasource", "datasource", "prometheus")
    titles = {p["title"] for p in dash["panels"]}
    assert {
        "Customers by stage",
        "Decisions per day",
        "Suspensions and restores",
        "Provider latency",
        "Provider errors",
        "Notices sent and failed",
        "Consumer lag",
        "Dead letters",
    } <= titles
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        kube.missing("promtool (Debian's prometheus)", "make setup-system")
        return
    doc = yaml.safe_load((MONITORING / "rules.yaml").read_text("utf-8"))
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(doc["spec"]), "utf-8")
    checked = subprocess.run(  # noqa: S603  (fixed argv: promtool on our rules)
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_prod_renders_the_monitor_the_rules_and_the_dashboard() -> None:
    docs = kube.overlay("prod")
    kinds = {d["kind"]: d for d in docs}
    monitor, rule = kinds["PodMonitor"], kinds["PrometheusRule"]
    assert rule["spec"] == yaml.safe_load((MONITORING / "rules.yaml").read_text("utf-8"))["spec"]
    maps = [d for d in docs if d["kind"] == "ConfigMap"]
    (dashboard,) = [
        d for d in maps if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    assert json.loads(dashboard["data"]["billstate.json"]) == _dashboard()
    # Every pod that serves HTTP is selected, in the namespace the monitor looks in.
    selector = monitor["spec"]["selector"]["matchLabels"]
    namespaces = monitor["spec"]["namespaceSelector"]["matchNames"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    serving = [
        d for d in docs
        if d["kind"] in {"Deployment", "StatefulSet"}
        and any(
            p.get("name") == "http"
            for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])
        )
    ]  # fmt: skip
    assert {d["metadata"]["name"] for d in serving} >= {"invoicing", "collections", "console"}
    for workload in serving:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), workload["metadata"]["name"]
        assert workload["metadata"]["namespace"] in namespaces, workload["metadata"]["name"]
