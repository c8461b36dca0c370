"""deploy/ stays consistent with the code: workloads, probes, settings, topics and ACLs.

No cluster and no broker: every YAML document under deploy/k8s is parsed with PyYAML and
compared with the topic catalog, the services' settings and the Names table.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from billstate_cli.commands.topics import strimzi_manifest
from billstate_shared.policy_file import load_policy
from billstate_shared.runtime.http import OPEN_PATHS
from billstate_shared.topics import (
    BY_NAME,
    CATALOG,
    CLOCK,
    CUSTOMERS,
    DLQ_TOPICS,
    INVOICES,
    STATE,
)
from tests import kube

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
REGENERATE = "regenerate it with `make deploy-manifests` and commit the result"

# ARCHITECTURE.md, Names: k8s name and consumer group -> import name.
SERVICES = {
    "invoicing": "billstate_invoicing",
    "collections": "billstate_collections",
    "access-control": "billstate_access_control",
    "notifications": "billstate_notifications",
    "console": "billstate_console",
}
FAUST_WORKERS = {"invoicing", "collections"}  # RocksDB tables; scale by partitions
# SQLite state on the pod's own volume, not shared between pods: one replica everywhere.
SINGLE_REPLICA = {"access-control", "notifications", "console"}
HTTP_TOKEN = ("access-control", "notifications")  # the shared bearer token; the console signs in
READS_POLICY = {"invoicing", "collections"}
NEEDS_SECRETS = {"access-control", "notifications"}  # provider, SMTP and signing secrets
# KafkaUsers beyond the services': the clock's and the topics check's (each runs a workload of
# its name), the billing bus's and the operators' (people and systems outside the cluster).
# Each is named in the catalog's writers as the value here.
CATALOG_WRITER = {
    "clock": "billstate clock",
    "billing-bus": "billing bus",
    "operators": "billstate CLI",
    "helpdesk": "helpdesk",
}
OTHER_USERS = {"clock", "billing-bus", "operators", "topics-check", "doctor", "helpdesk"}
CHECKS = {"topics-check", "doctor"}  # a Job and a CronJob, each as its own user
# What the operators' CLI reads beyond dead letters: `access approve` lists parked
# suspensions; a re-drive of access.commands.v1.dlq compares sequences with the newest command.
OPERATOR_READS = {"access.events.v1", "access.commands.v1"}
KAFKA_USER_SECRET = "/var/run/billstate/kafka-user"
NAMESPACE_LABEL = "kubernetes.io/metadata.name"  # set by Kubernetes on every namespace
HTTP_PORT = 8080
POLICY_DIR = "/etc/billstate"
POLICY_PATH = f"{POLICY_DIR}/policy.yaml"
DATA_DIR = "/var/lib/billstate/data"
OVERLAYS = kube.OVERLAYS
WORKLOADS = ("Deployment", "StatefulSet")
RUNS = {*SERVICES, "clock"}  # every long-running workload


Doc = dict[str, Any]


def _documents(folder: Path) -> Iterator[tuple[Path, Doc]]:
    for path in sorted(folder.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                yield path, doc


ALL = list(_documents(K8S))
BASE_DOCS = [doc for path, doc in ALL if path.parent == BASE]


def _of_kind(*kinds: str) -> list[Doc]:
    return [doc for doc in BASE_DOCS if doc.get("kind") in kinds]


def _workload(service: str) -> Doc:
    found = [d for d in _of_kind(*WORKLOADS) if d["metadata"]["name"] == service]
    assert len(found) == 1, f"{service}: expected one Deployment or StatefulSet, found {len(found)}"
    return found[0]


def _container(service: str) -> Doc:
    containers = _workload(service)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{service}: one container expected"
    container: Doc = containers[0]
    return container


def _env(service: str) -> dict[str, Doc]:
    return {e["name"]: e for e in _container(service).get("env", [])}


def _port(container: Doc, port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    return int(named[port])


def _kustomization(folder: Path) -> Doc:
    doc: Doc = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    return doc


def test_every_yaml_document_parses_and_has_a_kind() -> None:
    assert ALL, "no YAML under deploy/k8s"
    for path, doc in ALL:
        if path.name == "policy.yaml":
            continue
        assert "kind" in doc, f"{path.relative_to(ROOT)}: a document without kind"


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_a_workload_running_its_module(service: str) -> None:
    workload = _workload(service)
    assert workload["kind"] == "StatefulSet", f"{service}: keeps state, so a StatefulSet"
    module = SERVICES[service]
    assert _container(service)["args"] == ["python", "-m", module]
    assert importlib.util.find_spec(f"{module}.__main__") is not None, module
    selector = workload["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": service}
    assert workload["spec"]["template"]["metadata"]["labels"].items() >= selector.items()


@pytest.mark.parametrize("service", SERVICES)
def test_probes_point_at_readyz_and_healthz_on_the_http_port(service: str) -> None:
    container = _container(service)
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        check = container[probe]["httpGet"]
        assert check["path"] == path, f"{service} {probe}"
        assert _port(container, check["port"]) == HTTP_PORT, f"{service} {probe}"
    assert _env(service)[f"{_prefix(service)}HTTP_PORT"]["value"] == str(HTTP_PORT)


def _prefix(service: str) -> str:
    return f"BILLSTATE_{service.replace('-', '_').upper()}_"


@pytest.mark.parametrize("service", SERVICES)
def test_env_uses_the_service_prefix_and_real_settings(service: str) -> None:
    settings = importlib.import_module(f"{SERVICES[service]}.config").Settings
    assert settings.model_config["env_prefix"] == _prefix(service)
    fields = {name.upper() for name in settings.model_fields}
    env = _env(service)
    assert "KAFKA_BOOTSTRAP_SERVERS" in env, service
    for name in env:
        if name == "KAFKA_BOOTSTRAP_SERVERS":
            continue
        assert name.startswith(_prefix(service)), f"{service}: {name} lacks {_prefix(service)}"
        assert name.removeprefix(_prefix(service)) in fields, f"{service}: {name} is no setting"
    # The pod's setting, compared here; this test binds nothing.
    assert env[f"{_prefix(service)}HTTP_HOST"]["value"] == "0.0.0.0"  # noqa: S104


@pytest.mark.parametrize("service", SERVICES)
def test_resources_have_requests_and_limits(service: str) -> None:
    resources = _container(service)["resources"]
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= resources[part].keys(), f"{service} {part}"
    if service == "collections":
        assert resources["limits"]["memory"] == "2Gi"


def _check_data_volume(service: str, workload: Doc) -> None:
    """A `data` claim template mounted where the service's DATA_DIR setting points."""
    spec = workload["spec"]
    assert workload["kind"] == "StatefulSet", f"{service}: {workload['kind']}, not a StatefulSet"
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    assert "data" in claims, f"{service}: no `data` volumeClaimTemplate"
    (container,) = spec["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    assert mounts.get("data") == DATA_DIR, f"{service}: data volume not mounted at {DATA_DIR}"
    env = {e["name"]: e for e in container.get("env", [])}
    assert env[f"{_prefix(service)}DATA_DIR"]["value"] == mounts["data"], service
    # Any other directory the service writes to (the notifications outbox) is on that volume.
    for name, entry in env.items():
        if name.endswith("_DIR") and name != f"{_prefix(service)}DATA_DIR":
            assert Path(entry["value"]).is_relative_to(mounts["data"]), f"{service}: {name}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_keeps_its_data_dir_on_its_own_volume(service: str) -> None:
    workload = _workload(service)
    _check_data_volume(service, workload)
    services = {s["metadata"]["name"]: s for s in _of_kind("Service")}
    headless = services[workload["spec"]["serviceName"]]
    assert headless["spec"].get("clusterIP") == "None", f"{service}: serviceName not headless"


def test_the_outbox_of_notifications_is_on_its_data_volume() -> None:
    settings = importlib.import_module("billstate_notifications.config").Settings
    assert "outbox_dir" in settings.model_fields
    env = _env("notifications")
    outbox = env.get("BILLSTATE_NOTIFICATIONS_OUTBOX_DIR", {}).get("value")
    if outbox is not None:
        assert Path(outbox).is_relative_to(DATA_DIR)


@pytest.mark.parametrize("service", SERVICES)
def test_pods_are_scraped_and_run_as_the_service_account(service: str) -> None:
    template = _workload(service)["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(HTTP_PORT)
    accounts = {d["metadata"]["name"] for d in _of_kind("ServiceAccount")}
    assert template["spec"]["serviceAccountName"] in accounts


def test_policy_configmap_is_mounted_where_the_settings_look() -> None:
    generators = {g["name"]: g for g in _kustomization(BASE)["configMapGenerator"]}
    assert generators["billstate-policy"]["files"] == ["policy.yaml"]
    for service in SERVICES:
        env = _env(service)
        setting = f"{_prefix(service)}POLICY_FILE"
        if service not in READS_POLICY:
            assert setting not in env
            continue
        assert env[setting]["value"] == POLICY_PATH
        volumes = {v["name"]: v for v in _workload(service)["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in _container(service)["volumeMounts"]}
        config_map = volumes[mounts[POLICY_DIR]]["configMap"]
        assert config_map["name"] == "billstate-policy"
        assert {"key": "policy.yaml", "path": "policy.yaml"} in config_map["items"]


def test_the_deployed_policy_is_the_example_policy_and_valid() -> None:
    deployed = load_policy(BASE / "policy.yaml")
    assert deployed == load_policy(ROOT / "policies" / "standard.yaml"), (
        "deploy/k8s/base/policy.yaml is a copy of policies/standard.yaml; copy it again"
    )


def test_secrets_are_referenced_never_committed() -> None:
    committed = [path.relative_to(ROOT) for path, doc in ALL if doc.get("kind") == "Secret"]
    assert not committed, f"Secret values do not belong in the repository: {committed}"
    for service in NEEDS_SECRETS:
        # The provider's or channel's secrets: an optional Secret mounted read-only, whose
        # files the service's `*_FILE` settings (in its ConfigMap) name.
        mounts = {m["name"]: m for m in _container(service)["volumeMounts"]}
        assert mounts["secrets"]["readOnly"] is True, service
        volumes = {v["name"]: v for v in _workload(service)["spec"]["template"]["spec"]["volumes"]}
        assert volumes["secrets"]["secret"]["secretName"] == f"{service}-secrets"
        refs = [e["configMapRef"]["name"] for e in _container(service).get("envFrom", [])]
        assert refs == [f"{service}-settings"], f"{service}: its settings' ConfigMap"


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_logs_into_kafka_as_its_own_kafka_user(service: str) -> None:
    """SCRAM-SHA-512 over TLS as the KafkaUser of the same name, whose ACLs are checked
    below; the password is the key Strimzi writes, the CA file a mounted cluster CA."""
    env, prefix = _env(service), _prefix(service)
    assert env[f"{prefix}KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env[f"{prefix}KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
    assert env[f"{prefix}KAFKA_SASL_USERNAME"]["value"] == service
    assert f"{prefix}KAFKA_SASL_PASSWORD" not in env, "the password is a mounted file"
    password = env[f"{prefix}KAFKA_SASL_PASSWORD_FILE"]["value"]
    assert password == f"{KAFKA_USER_SECRET}/password"
    users = {d["metadata"]["name"]: d for _, d in ALL if d.get("kind") == "KafkaUser"}
    assert users[service]["spec"]["authentication"]["type"] == "scram-sha-512"
    ca = env[f"{prefix}KAFKA_SSL_CA_FILE"]["value"]
    mounts = {m["mountPath"]: m for m in _container(service)["volumeMounts"]}
    volumes = _workload(service)["spec"]["template"]["spec"]["volumes"]
    for path, secret in ((ca, "billstate-cluster-ca-cert"), (password, service)):
        folder = path.rsplit("/", 1)[0]
        assert folder in mounts, f"{service}: {path} is on no volume"
        assert mounts[folder].get("readOnly") is True, f"{service}: {folder} is not read-only"
        (volume,) = [v for v in volumes if v["name"] == mounts[folder]["name"]]
        assert volume["secret"]["secretName"] == secret, f"{service}: {path}"


@pytest.mark.parametrize("service", HTTP_TOKEN)
def test_the_http_token_is_a_mounted_secret_file(service: str) -> None:
    """The services with routes beyond the probes (access-control's customer view and
    /reconcile, notifications' /notices) read their bearer token from a mounted Secret."""
    env, prefix = _env(service), _prefix(service)
    token = env[f"{prefix}HTTP_TOKEN_FILE"]["value"]
    folder, name = token.rsplit("/", 1)
    mounts = {m["mountPath"]: m for m in _container(service)["volumeMounts"]}
    assert mounts[folder].get("readOnly") is True, f"{service}: {folder} is not read-only"
    volumes = _workload(service)["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v for v in volumes if v["name"] == mounts[folder]["name"]]
    assert volume["secret"]["secretName"] == "billstate-http-token"
    assert volume["secret"]["items"] == [{"key": "token", "path": name}]


def test_the_console_tokens_are_mounted_secret_files() -> None:
    """The console's static tokens (a viewer's, an operator's) come from one mounted Secret;
    no token is in the manifest, and the shared HTTP token is not the console's sign-in."""
    env, prefix = _env("console"), _prefix("console")
    assert f"{prefix}HTTP_TOKEN_FILE" not in env
    assert f"{prefix}VIEWER_TOKEN" not in env
    assert f"{prefix}OPERATOR_TOKEN" not in env
    mounts = {m["mountPath"]: m for m in _container("console")["volumeMounts"]}
    volumes = _workload("console")["spec"]["template"]["spec"]["volumes"]
    for role in ("viewer", "operator"):
        folder, name = env[f"{prefix}{role.upper()}_TOKEN_FILE"]["value"].rsplit("/", 1)
        assert mounts[folder].get("readOnly") is True, folder
        (volume,) = [v for v in volumes if v["name"] == mounts[folder]["name"]]
        assert volume["secret"]["secretName"] == "billstate-console-tokens"
        assert {"key": role, "path": name} in volume["secret"]["items"]


def test_the_console_session_secret_is_a_file_and_its_store_is_on_its_volume() -> None:
    """The session signing key is a file of the tokens Secret (a restart signs nobody out);
    the store is SQLite on the data volume unless a PostgreSQL URL file is mounted."""
    env, prefix = _env("console"), _prefix("console")
    assert f"{prefix}DATABASE_URL" not in env
    assert f"{prefix}SESSION_SECRET" not in env
    folder, name = env[f"{prefix}SESSION_SECRET_FILE"]["value"].rsplit("/", 1)
    mounts = {m["mountPath"]: m for m in _container("console")["volumeMounts"]}
    volumes = _workload("console")["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v for v in volumes if v["name"] == mounts[folder]["name"]]
    assert volume["secret"]["secretName"] == "billstate-console-tokens"
    assert {"key": "session", "path": name} in volume["secret"]["items"]


def test_topics_yaml_is_what_the_catalog_generates_today() -> None:
    committed = (BASE / "topics.yaml").read_text(encoding="utf-8")
    assert committed == strimzi_manifest(CATALOG, "billstate", 3), (
        f"deploy/k8s/base/topics.yaml differs from the topic catalog; {REGENERATE}"
    )


def _users() -> dict[str, Doc]:
    users = {d["metadata"]["name"]: d for d in _of_kind("KafkaUser")}
    assert set(users) == set(SERVICES) | OTHER_USERS, "one KafkaUser per service, and the others"
    return users


READ, WRITE = frozenset({"Read", "Describe"}), frozenset({"Write", "Describe"})


def _needed(user: str) -> set[tuple[str, frozenset[str]]]:
    """The literal topic ACLs the catalog says `user` needs, no more.

    A service reads what its readers or observers name and writes what its writers name (its
    DLQs included); the console, which re-drives dead letters, writes every topic with a DLQ.
    The clock and the billing bus write what the catalog's writers name them for. The
    operators write the CLI's topics, read every DLQ and re-drive it, and read what their
    commands look at. The topics check describes every topic.
    """
    redriven = {t.name.removesuffix(".dlq") for t in DLQ_TOPICS}
    if user in SERVICES:
        return {(t.name, READ) for t in CATALOG if user in t.readers or user in t.observers} | {
            (t.name, WRITE)
            for t in CATALOG
            if user in t.writers or (user == "console" and t.name in redriven)
        }
    describe = {(t.name, frozenset({"Describe", "DescribeConfigs"})) for t in CATALOG}
    if user == "topics-check":
        return describe
    if user == "doctor":  # and its round trip: billstate_cli.commands.doctor
        reads = {CLOCK.name, STATE.name}
        writes = {CUSTOMERS.name, INVOICES.name}
        return describe | {(n, READ) for n in reads} | {(n, WRITE) for n in writes}
    writes = {(t.name, WRITE) for t in CATALOG if CATALOG_WRITER[user] in t.writers}
    if user == "operators":
        writes |= {(name, WRITE) for name in redriven}
        return writes | {(t.name, READ) for t in DLQ_TOPICS} | {(n, READ) for n in OPERATOR_READS}
    return writes


def _literal_topics(user: Doc) -> set[tuple[str, frozenset[str]]]:
    return {
        (name, ops)
        for kind, name, pattern, ops in _acls(user)
        if kind == "topic" and pattern == "literal"
    }


def _acls(user: Doc) -> list[tuple[str, str, str, frozenset[str]]]:
    return [
        (
            acl["resource"]["type"],
            acl["resource"]["name"],
            acl["resource"].get("patternType", "literal"),
            frozenset(acl["operations"]),
        )
        for acl in user["spec"]["authorization"]["acls"]
    ]


def test_every_kafka_user_acl_topic_is_in_the_catalog() -> None:
    for service, user in _users().items():
        for kind, name, pattern, _ops in _acls(user):
            if kind != "topic":
                continue
            if pattern == "literal":
                assert name in BY_NAME, f"{service}: ACL on {name}, which the catalog lacks"
            else:
                # faust's own changelog topics; must not reach into the catalog.
                assert service in FAUST_WORKERS, f"{service}: prefix ACL {name}"
                assert name == f"{service}-", f"{service}: prefix ACL {name}"
                assert not [t.name for t in CATALOG if t.name.startswith(name)]


def test_kafka_user_acls_are_what_the_catalog_says() -> None:
    for service, user in _users().items():
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == "billstate"
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        acls = _acls(user)
        literal_topics = _literal_topics(user)
        expected = _needed(service)
        assert expected, f"{service}: the catalog gives it nothing"
        assert literal_topics == expected, (
            f"{service}: ACLs differ from the catalog's readers and writers in "
            f"deploy/k8s/base/kafka-users.yaml; missing {sorted(expected - literal_topics)}, "
            f"extra {sorted(literal_topics - expected)}"
        )
        if service == "doctor":
            # It reads the services' committed offsets, never joins a group.
            groups = {(name, p, ops) for kind, name, p, ops in acls if kind == "group"}
            describe = frozenset({"Describe"})
            assert groups == {(g, "literal", describe) for g in SERVICES if g != "console"} | {
                ("console-", "prefix", describe)
            }, "doctor: the services' groups, Describe only"
            continue
        if service in OTHER_USERS:
            # No consumer group (the CLI reads by assignment) and nothing but topics.
            assert {kind for kind, *_ in acls} == {"topic"}, f"{service}: beyond topics"
            assert {p for _, _, p, _ in acls} == {"literal"}, f"{service}: a prefix ACL"
            continue
        dlqs = {t.dlq for t in CATALOG if service in t.readers}
        assert dlqs <= {name for name, ops in literal_topics if "Write" in ops}
        groups = {(name, p, ops) for kind, name, p, ops in acls if kind == "group"}
        # The console's groups are `console-<generation>`: a new store, a new group.
        group = ("console-", "prefix") if service == "console" else (service, "literal")
        assert groups == {(*group, frozenset({"Read"}))}, f"{service}: consumer group ACL"
        if service == "console":
            assert not [t for t in DLQ_TOPICS if (t.name, frozenset({"Write", "Describe"}))
                        in literal_topics], "an observer writes no dead letters"  # fmt: skip


def test_every_kustomization_reference_exists() -> None:
    for kustomization in K8S.rglob("kustomization.yaml"):
        folder = kustomization.parent
        doc = _kustomization(folder)
        paths = list(doc.get("resources", []))
        paths += [p["path"] for p in doc.get("patches", []) if "path" in p]
        paths += [f for g in doc.get("configMapGenerator", []) for f in g.get("files", [])]
        for ref in paths:
            assert (folder / ref).exists(), f"{kustomization.relative_to(ROOT)}: {ref} is missing"


def _target_matches(target: Doc, doc: Doc) -> bool:
    meta = doc.get("metadata", {})
    if "kind" in target and target["kind"] != doc.get("kind"):
        return False
    return "name" not in target or target["name"] == meta.get("name")


def _read_replicas(folder: Path) -> dict[tuple[str, str], int | None]:
    """Workload replicas an overlay ends up with, from its files alone (no kustomize).

    Follows `resources` (folders and files), `patches` (files and inline; strategic merge
    and JSON 6902 ops on /spec/replicas), `patchesStrategicMerge` and `replicas`: the ways a
    kustomization can change a replica count.
    """
    doc = _kustomization(folder)
    replicas = _resource_replicas(folder, doc)
    entries = list(doc.get("patches", []))
    entries += [{"path": p} for p in doc.get("patchesStrategicMerge", [])]
    for entry in entries:
        text = entry["patch"] if "patch" in entry else (folder / entry["path"]).read_text("utf-8")
        target = entry.get("target", {})
        for patch in yaml.safe_load_all(text):
            if isinstance(patch, list):  # JSON 6902
                _json6902(patch, target, replicas)
            elif patch:
                _strategic(patch, target, replicas)
    _replicas_field(doc, replicas)
    return replicas


def _resource_replicas(folder: Path, doc: Doc) -> dict[tuple[str, str], int | None]:
    """The workloads of a kustomization's `resources`, folders followed, as they are there."""
    replicas: dict[tuple[str, str], int | None] = {}
    for ref in doc.get("resources", []):
        path = folder / ref
        if path.is_dir():
            replicas.update(_read_replicas(path))
            continue
        for item in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if item and item.get("kind") in WORKLOADS:
                replicas[(item["kind"], item["metadata"]["name"])] = item["spec"].get("replicas")
    return replicas


def _json6902(ops: list[Doc], target: Doc, replicas: dict[tuple[str, str], int | None]) -> None:
    for op in ops:
        if op["path"] != "/spec/replicas":
            continue
        for kind, name in replicas:
            if _target_matches(target, {"kind": kind, "metadata": {"name": name}}):
                replicas[(kind, name)] = op.get("value")


def _strategic(patch: Doc, target: Doc, replicas: dict[tuple[str, str], int | None]) -> None:
    if not isinstance(patch, dict) or "replicas" not in patch.get("spec", {}):
        return
    for kind, name in replicas:
        candidate = {"kind": kind, "metadata": {"name": name}}
        if _target_matches(target, candidate) and _target_matches(
            {"kind": patch.get("kind"), "name": patch["metadata"]["name"]}, candidate
        ):
            replicas[(kind, name)] = patch["spec"]["replicas"]


def _replicas_field(doc: Doc, replicas: dict[tuple[str, str], int | None]) -> None:
    """A kustomization's own `replicas` list, applied by workload name."""
    for entry in doc.get("replicas", []):
        for kind, name in replicas:
            if name == entry["name"]:
                replicas[(kind, name)] = entry["count"]


def test_there_are_dev_and_prod_overlays() -> None:
    assert {"dev", "prod"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_stateful_services_run_one_replica_in_every_overlay(overlay: str) -> None:
    """access-control, notifications, the console and the clock: one replica, in the base
    and in every overlay; in production two of each faust worker.

    Their state (a SQLite file) is not shared: a partition that moves to a second replica
    arrives without its history; a second clock doubles the ticks. Rendered with kustomize
    when kubectl is installed; the overlay's own files are read either way, and the two must
    agree.
    """
    for service in SINGLE_REPLICA:
        assert _workload(service)["spec"]["replicas"] == 1, f"base: {service}"
    found = _read_replicas(K8S / "overlays" / overlay)
    read = {name: count for (_kind, name), count in found.items()}
    assert set(read) == RUNS, overlay
    for service in (*SINGLE_REPLICA, "clock"):
        assert read[service] == 1, f"{overlay}: {service} runs {read[service]} replicas"
    if overlay == "dev":
        assert set(read.values()) == {1}, "dev runs one of everything"
    if overlay == "prod":
        for worker in FAUST_WORKERS:
            assert read[worker] == 2, f"prod: {worker} runs {read[worker]}, not 2 workers"
    if shutil.which("kubectl") is not None:
        rendered = {
            d["metadata"]["name"]: d["spec"].get("replicas", 1)
            for d in kube.overlay(overlay)
            if d["kind"] in WORKLOADS
        }
        assert rendered == {name: 1 if count is None else count for name, count in read.items()}
        for service in SINGLE_REPLICA:
            assert rendered[service] == 1, f"{overlay}: {service} renders {rendered[service]}"


def test_nothing_autoscales_or_budgets_the_single_replica_services() -> None:
    for path, doc in ALL:
        where = path.relative_to(ROOT)
        if doc.get("kind") == "HorizontalPodAutoscaler":
            scaled = doc["spec"]["scaleTargetRef"]["name"]
            assert scaled not in SINGLE_REPLICA, f"{where}: autoscales {scaled}"
        if doc.get("kind") != "PodDisruptionBudget":
            continue
        # With one replica a budget blocks every drain (minAvailable 1, maxUnavailable 0)
        # or protects nothing (maxUnavailable 1): none at all.
        selects = set(doc["spec"]["selector"].get("matchLabels", {}).values())
        assert not selects & (SINGLE_REPLICA | {"clock"}), f"{where}: a budget on one replica"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_disruption_budget_protects_a_second_replica(overlay: str) -> None:
    """A budget selects a workload of two or more replicas and lets one go at a time; in
    production the faust workers have one, and keep a standby copy of each other's tables."""
    docs = kube.overlay(overlay)
    replicas = {
        d["metadata"]["name"]: d["spec"].get("replicas", 1) for d in docs if d["kind"] in WORKLOADS
    }
    budgets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PodDisruptionBudget"}
    for name, budget in budgets.items():
        selected = budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        assert replicas[selected] >= 2, f"{overlay}: budget {name} on {replicas[selected]} pod"
        assert budget["spec"] == {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": selected}},
        }, f"{overlay}: budget {name}"
    if overlay != "prod":
        return
    assert set(budgets) == FAUST_WORKERS
    for worker in FAUST_WORKERS:
        env = _rendered_env(docs, worker)
        assert env[f"{_prefix(worker)}STANDBY_REPLICAS"]["value"] == "1", worker


def _rendered_env(docs: list[Doc], name: str) -> dict[str, Doc]:
    (workload,) = [d for d in docs if d["kind"] in WORKLOADS and d["metadata"]["name"] == name]
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container.get("env", [])}


def test_dockerfile_copies_every_workspace_member_manifest() -> None:
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text(encoding="utf-8")
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    members = [
        path.parent.relative_to(ROOT).as_posix()
        for pattern in workspace["tool"]["uv"]["workspace"]["members"]
        for path in sorted(ROOT.glob(f"{pattern}/pyproject.toml"))
    ]
    assert len(members) >= len(SERVICES) + 2
    for member in members:
        assert f"COPY {member}/pyproject.toml" in dockerfile, f"Dockerfile misses {member}"
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", ".cache"} <= set(ignored)


def test_image_leaves_out_the_dev_kit() -> None:
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text(encoding="utf-8")
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    # The image installs the root project's dependencies, never the whole workspace ...
    assert "--all-packages" not in dockerfile
    assert "--no-dev" in dockerfile
    assert "COPY devkit " not in dockerfile  # only its manifest, for the lock
    # ... and those are the services and the CLI; the dev kit is a dev dependency only.
    assert "billstate-devkit" not in workspace["project"]["dependencies"]
    assert "billstate-devkit" in workspace["dependency-groups"]["dev"]
    for member in ("shared", "cli", *(f"services/{name}" for name in SERVICES)):
        manifest = tomllib.loads((ROOT / member / "pyproject.toml").read_text(encoding="utf-8"))
        assert not any("devkit" in dep for dep in manifest["project"]["dependencies"]), member


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_render_with_kustomize(overlay: str) -> None:
    docs = kube.overlay(overlay)
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in WORKLOADS}
    assert set(workloads) == RUNS
    for service in SERVICES:
        _check_data_volume(service, workloads[service])
    assert sum(d["kind"] == "KafkaTopic" for d in docs) == len(CATALOG)


def _pods(docs: list[Doc]) -> dict[str, Doc]:
    """Pod specs of the workloads, Jobs and CronJobs, by name."""
    kinds = (*WORKLOADS, "Job")
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs if d["kind"] in kinds
    }
    for d in docs:
        if d["kind"] == "CronJob":
            pods[d["metadata"]["name"]] = d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return pods


def _kafka_login(name: str, pod: Doc) -> str | None:
    """The SCRAM user a pod logs into Kafka as, its password file checked on the way."""
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container.get("env", [])}
    users = [e["value"] for n, e in env.items() if n.endswith("KAFKA_SASL_USERNAME")]
    if not users:
        return None
    (password,) = [e["value"] for n, e in env.items() if n.endswith("KAFKA_SASL_PASSWORD_FILE")]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    secret = volumes[mounts[password.rsplit("/", 1)[0]]]["secret"]["secretName"]
    assert secret == users[0], f"{name}: logs in as {users[0]} with the password of {secret}"
    return str(users[0])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_and_kafka_user_agree_with_the_catalog(overlay: str) -> None:
    """Rendered: each workload logs in as the KafkaUser of its name, and that user may do
    exactly what the catalog says the workload touches: nothing missing, nothing more. The
    billing bus and the operators run nothing here; their users are checked the same way."""
    docs = kube.overlay(overlay)
    users = {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaUser"}
    logins = {name: _kafka_login(name, pod) for name, pod in _pods(docs).items()}
    assert logins == {name: name for name in logins}, f"{overlay}: a workload as another user"
    assert set(logins) == RUNS | CHECKS, f"{overlay}: workloads"
    assert set(users) == set(logins) | {"billing-bus", "operators", "helpdesk"}, (
        f"{overlay}: KafkaUsers"
    )
    for name, user in users.items():
        allowed, needed = _literal_topics(user), _needed(name)
        assert needed - allowed == set(), f"{overlay}: {name} may not {sorted(needed - allowed)}"
        assert allowed - needed == set(), f"{overlay}: {name} needs no {sorted(allowed - needed)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_reach_the_pods_as_mounted_files_only(overlay: str) -> None:
    """No Secret becomes an environment variable (`env.valueFrom.secretKeyRef`, `envFrom:
    secretRef`): they are read-only files the `*_FILE` settings name. The settings that
    come from a ConfigMap are real settings of the service, with its prefix."""
    docs = kube.overlay(overlay)
    config_maps = {
        d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"
    }
    for name, pod in _pods(docs).items():
        for container in pod["containers"] + pod.get("initContainers", []):
            for entry in container.get("env", []):
                assert "secretKeyRef" not in entry.get("valueFrom", {}), f"{name}: {entry['name']}"
            for source in container.get("envFrom", []):
                assert "secretRef" not in source, f"{overlay}: {name} takes a Secret as env"
                if name not in SERVICES:
                    continue
                fields = importlib.import_module(f"{SERVICES[name]}.config").Settings.model_fields
                for key in config_maps[source["configMapRef"]["name"]]:
                    assert key.startswith(_prefix(name)), f"{overlay}: {name}: {key}"
                    assert key.removeprefix(_prefix(name)).lower() in fields, f"{name}: {key}"
            mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
            for volume in pod["volumes"]:
                if "secret" in volume and volume["name"] in mounts:
                    assert mounts[volume["name"]].get("readOnly") is True, f"{name}: {volume}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topics_replicas_and_min_insync_replicas(overlay: str) -> None:
    """Production: three replicas, two in sync before a write counts; dev's one broker: 1/1."""
    replicas, in_sync = {"prod": (3, "2"), "dev": (1, "1")}[overlay]
    topics = [d for d in kube.overlay(overlay) if d["kind"] == "KafkaTopic"]
    assert len(topics) == len(CATALOG)
    for topic in topics:
        assert topic["spec"]["replicas"] == replicas, topic["spec"]["topicName"]
        assert topic["spec"]["config"]["min.insync.replicas"] == in_sync, topic["spec"]["topicName"]
        config = {k: str(v) for k, v in topic["spec"]["config"].items()}
        assert config.items() >= BY_NAME[topic["spec"]["topicName"]].config.items()


def test_production_images_are_pinned_by_digest() -> None:
    for name, pod in _pods(kube.overlay("prod")).items():
        for container in pod["containers"] + pod.get("initContainers", []):
            image = container["image"]
            assert re.fullmatch(r"[^@\s]+@sha256:[0-9a-f]{64}", image), f"{name}: {image}"


def test_the_clock_runs_once_as_its_own_user_and_invoicing_guards_its_ticks() -> None:
    clock = next(d for d in _of_kind("Deployment") if d["metadata"]["name"] == "clock")
    assert clock["spec"]["replicas"] == 1
    assert clock["spec"]["strategy"] == {"type": "Recreate"}, "two clocks never overlap"
    (container,) = clock["spec"]["template"]["spec"]["containers"]
    assert container["args"][:3] == ["billstate", "clock", "run"]
    assert container["args"][3:] == ["--every", "15m"]
    skew = _env("invoicing")[f"{_prefix('invoicing')}CLOCK_SKEW"]["value"]
    assert float(skew) == 600.0, "the guard's setting, as docs/operations.md says"
    # The broker stamps each tick's time: what the guard compares with.
    assert BY_NAME["billing.clock.v1"].config["message.timestamp.type"] == "LogAppendTime"


def test_the_topics_check_job_fails_on_missing_or_drifted_topics() -> None:
    (job,) = _of_kind("Job")
    assert job["metadata"]["name"] == "topics-check"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    script = container["args"][-1]
    assert "billstate topics apply --dry-run" in script  # exits 1 on drift
    assert "would create" in script  # and on a missing topic
    assert "exit 1" in script
    assert job["spec"]["backoffLimit"] >= 1, "retries while Strimzi creates the topics"


@pytest.mark.parametrize("worker", sorted(FAUST_WORKERS))
def test_the_startup_probe_waits_for_the_tables(worker: str) -> None:
    """/startupz answers 200 once the worker was assigned and restored its tables."""
    container = _container(worker)
    check = container["startupProbe"]["httpGet"]
    assert check["path"] == "/startupz"
    assert _port(container, check["port"]) == HTTP_PORT
    assert "/startupz" in OPEN_PATHS, "the kubelet carries no token"


def _policy_peers(rule: Doc) -> list[Doc]:
    return list(rule.get("from", rule.get("to", [])))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default(overlay: str) -> None:
    docs = kube.overlay(overlay)
    policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    # Who may come in: Prometheus to the HTTP port, the ingress controller to the console.
    ingress = {n: p for n, p in policies.items() if "Ingress" in p["policyTypes"]}
    assert set(ingress) == {"default-deny", "metrics-from-monitoring", "console-from-ingress"}
    for name, namespace in (
        ("metrics-from-monitoring", "monitoring"),
        ("console-from-ingress", "ingress-nginx"),
    ):
        (rule,) = policies[name]["ingress"]
        (peer,) = _policy_peers(rule)
        assert peer == {"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: namespace}}}
        assert rule["ports"] == [{"protocol": "TCP", "port": HTTP_PORT}], name
    # Where they may go: DNS and Kafka for all; the internet on 443/587/465 for two.
    (dns,) = policies["dns"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    (kafka,) = policies["kafka"]["egress"]
    (peer,) = _policy_peers(kafka)
    assert peer["podSelector"] == {"matchLabels": {"strimzi.io/cluster": "billstate"}}
    outside = policies["provider-and-smtp"]
    assert set(outside["podSelector"]["matchExpressions"][0]["values"]) == NEEDS_SECRETS
    (rule,) = outside["egress"]
    assert {p["port"] for p in rule["ports"]} == {443, 587, 465}
    egress = {n for n, p in policies.items() if "Egress" in p["policyTypes"]}
    assert egress == {"default-deny", "dns", "kafka", "provider-and-smtp"}
