"""Every rendered manifest validates: core kinds strictly, custom resources against their CRDs."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess

import kubernetes_validate
import pytest

from tests.kube import OVERLAYS, ROOT, Doc, missing, overlay

SCHEMAS = ROOT / "deploy" / "schemas"
# The oldest Kubernetes we support: a field newer than it is refused.
KUBERNETES = "1.33"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        missing("node")
    elif not (SCHEMAS / "node_modules").is_dir():
        missing(f"{SCHEMAS.relative_to(ROOT)}/node_modules", "make validators")
    assert node is not None
    return node


def _is_core(doc: Doc) -> bool:
    """Kubernetes' own API groups: the legacy core group and the *.k8s.io groups."""
    group = doc["apiVersion"].rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def _name(doc: Doc) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def _core_errors(docs: list[Doc]) -> list[str]:
    errors = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = "/".join(str(p) for p in error.absolute_path)
            errors.append(f"{_name(doc)}: {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(f"{_name(doc)}: {error.message}")
    return errors


def _custom_errors(docs: list[Doc]) -> list[str]:
    """The documents through deploy/schemas/validate.mjs: its ERROR lines, or why it failed."""
    checked = subprocess.run(  # noqa: S603  (fixed argv: node on our script)
        [_node(), str(SCHEMAS / "validate.mjs")],
        input=json.dumps(docs, default=str),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    lines = checked.stdout.splitlines()
    errors = [line for line in lines if not line.startswith("OK ")]
    assert checked.returncode in {0, 1}, checked.stderr
    assert (checked.returncode == 1) == bool(errors), checked.stdout
    assert len(lines) == len(docs), f"one line per document expected: {checked.stdout}"
    return errors


# prod includes the monitoring component (tests/test_monitoring.py holds that), so its
# PodMonitor and PrometheusRule are validated with it.
TARGETS = OVERLAYS


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    return {t: overlay(t) for t in TARGETS}


def test_there_is_something_to_validate() -> None:
    assert {"dev", "prod"} <= set(TARGETS)


@pytest.mark.parametrize("target", TARGETS)
def test_core_kinds_are_valid_kubernetes_strictly(
    target: str, rendered: dict[str, list[Doc]]
) -> None:
    core = [d for d in rendered[target] if _is_core(d)]
    assert {"StatefulSet", "Service", "ServiceAccount", "ConfigMap"} <= {d["kind"] for d in core}
    errors = _core_errors(core)
    assert not errors, f"{target}: refused by Kubernetes {KUBERNETES}:\n" + "\n".join(errors)


@pytest.mark.parametrize("target", TARGETS)
def test_custom_resources_match_their_crds(target: str, rendered: dict[str, list[Doc]]) -> None:
    custom = [d for d in rendered[target] if not _is_core(d)]
    kinds = {d["kind"] for d in custom}
    assert {"KafkaTopic", "KafkaUser"} <= kinds
    if target == "prod":  # the overlay with the monitoring component
        assert kinds & {"PodMonitor", "ServiceMonitor"}, f"{target}: no scrape configuration"
        assert "PrometheusRule" in kinds, f"{target}: no alerting rules"
    errors = _custom_errors(custom)
    assert not errors, f"{target}: refused by the CRD schemas:\n" + "\n".join(errors)


def _first(docs: list[Doc], kind: str) -> Doc:
    return copy.deepcopy(next(d for d in docs if d["kind"] == kind))


def test_a_kafka_user_with_an_unknown_acl_operation_is_refused(
    rendered: dict[str, list[Doc]],
) -> None:
    user = _first(rendered["prod"], "KafkaUser")
    assert not _custom_errors([user])
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Read", "Reed"]
    (error,) = _custom_errors([user])
    assert error.startswith(f"ERROR {_name(user)}: ")
    assert "/spec/authorization/acls/0/operations/1" in error


def test_an_unknown_custom_resource_kind_is_refused() -> None:
    odd = {"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopik", "metadata": {}}
    foreign = {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "x"}}
    errors = _custom_errors([odd, foreign])
    assert [e.split(":")[0] for e in errors] == ["ERROR KafkaTopik/undefined", "ERROR Thing/x"]


def test_an_unknown_field_in_a_workload_is_refused(rendered: dict[str, list[Doc]]) -> None:
    deployment: Doc = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "broken"},
        "spec": {
            "selector": {"matchLabels": {"app": "broken"}},
            "template": {
                "metadata": {"labels": {"app": "broken"}},
                "spec": {"containers": [{"name": "main", "image": "billstate"}]},
            },
        },
    }
    assert not _core_errors([deployment])
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    (error,) = _core_errors([deployment])
    assert "spec/template/spec/containers/0" in error, error
    assert "imagePullPolicyy" in error, error
    # The same for what we ship: a misspelt probe field in a rendered StatefulSet.
    workload = _first(rendered["prod"], "StatefulSet")
    assert not _core_errors([workload])
    workload["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSecond"] = 5
    (error,) = _core_errors([workload])
    assert "periodSecond" in error, error
