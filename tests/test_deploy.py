"""deploy/ stays consistent with the code: workloads, probes, settings, topics and ACLs.

No cluster and no broker: every YAML document under deploy/k8s is parsed with PyYAML and
compared with the topic catalog, the services' settings and the Names table.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from billstate_cli.commands.topics import strimzi_manifest
from billstate_shared.policy_file import load_policy
from billstate_shared.topics import BY_NAME, CATALOG, DLQ_TOPICS

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
HTTP_PORT = 8080
POLICY_DIR = "/etc/billstate"
POLICY_PATH = f"{POLICY_DIR}/policy.yaml"
DATA_DIR = "/var/lib/billstate/data"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
WORKLOADS = ("Deployment", "StatefulSet")


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
        refs = [e["secretRef"]["name"] for e in _container(service).get("envFrom", [])]
        assert refs, f"{service} references no Secret for its credentials"


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_logs_into_kafka_as_its_own_kafka_user(service: str) -> None:
    """SCRAM-SHA-512 over TLS as the KafkaUser of the same name, whose ACLs are checked
    below; the password is the key Strimzi writes, the CA file a mounted cluster CA."""
    env, prefix = _env(service), _prefix(service)
    assert env[f"{prefix}KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env[f"{prefix}KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
    assert env[f"{prefix}KAFKA_SASL_USERNAME"]["value"] == service
    secret = env[f"{prefix}KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert secret == {"name": service, "key": "password"}
    users = {d["metadata"]["name"]: d for _, d in ALL if d.get("kind") == "KafkaUser"}
    assert users[service]["spec"]["authentication"]["type"] == "scram-sha-512"
    ca = env[f"{prefix}KAFKA_SSL_CA_FILE"]["value"]
    mounts = {m["mountPath"]: m["name"] for m in _container(service)["volumeMounts"]}
    folder = ca.rsplit("/", 1)[0]
    assert folder in mounts, f"{service}: {ca} is on no volume"
    volumes = _workload(service)["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v for v in volumes if v["name"] == mounts[folder]]
    assert volume["secret"]["secretName"] == "billstate-cluster-ca-cert"


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


def test_the_console_database_url_and_session_secret_are_secrets() -> None:
    """PostgreSQL in production (its URL holds a password: a Secret); without it, SQLite
    on the console's own data volume. The session signing key is a Secret's too."""
    url = _env("console")[f"{_prefix('console')}DATABASE_URL"]
    assert "value" not in url
    ref = url["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "console-database", "key": "url", "optional": True}
    session = _env("console")[f"{_prefix('console')}SESSION_SECRET"]["valueFrom"]
    assert session["secretKeyRef"]["name"] == "billstate-console-tokens"


def test_topics_yaml_is_what_the_catalog_generates_today() -> None:
    committed = (BASE / "topics.yaml").read_text(encoding="utf-8")
    assert committed == strimzi_manifest(CATALOG, "billstate", 3), (
        f"deploy/k8s/base/topics.yaml differs from the topic catalog; {REGENERATE}"
    )


def _users() -> dict[str, Doc]:
    users = {d["metadata"]["name"]: d for d in _of_kind("KafkaUser")}
    assert set(users) == set(SERVICES), "one KafkaUser per service, named as the service"
    return users


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
        acls = _acls(user)
        literal_topics = {
            (name, ops)
            for kind, name, pattern, ops in acls
            if kind == "topic" and pattern == "literal"
        }
        # Readers and observers read; writers write, and the console, which re-drives dead
        # letters, writes every topic that has a DLQ.
        redriven = {t.name.removesuffix(".dlq") for t in DLQ_TOPICS}
        expected = {
            (t.name, frozenset({"Read", "Describe"}))
            for t in CATALOG
            if service in t.readers or service in t.observers
        } | {
            (t.name, frozenset({"Write", "Describe"}))
            for t in CATALOG
            if service in t.writers or (service == "console" and t.name in redriven)
        }
        assert literal_topics == expected, (
            f"{service}: ACLs differ from the catalog's readers and writers in "
            f"deploy/k8s/base/kafka-users.yaml; missing {sorted(expected - literal_topics)}, "
            f"extra {sorted(literal_topics - expected)}"
        )
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


def _render(overlay: str) -> list[Doc]:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl is not installed"
    rendered = subprocess.run(  # noqa: S603  (fixed argv: kubectl on one of our overlays)
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert rendered.returncode == 0, rendered.stderr
    return [d for d in yaml.safe_load_all(rendered.stdout) if d]


def test_there_are_dev_and_prod_overlays() -> None:
    assert {"dev", "prod"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_stateful_services_run_one_replica_in_every_overlay(overlay: str) -> None:
    """access-control and notifications: one replica, in the base and in every overlay.

    Their state (a SQLite file) is not shared: a partition that moves to a second replica
    arrives without its history. Rendered with kustomize when kubectl is installed; the
    overlay's own files are read either way, and the two must agree.
    """
    for service in SINGLE_REPLICA:
        assert _workload(service)["spec"]["replicas"] == 1, f"base: {service}"
    found = _read_replicas(K8S / "overlays" / overlay)
    read = {name: count for (_kind, name), count in found.items()}
    assert set(read) == set(SERVICES), overlay
    for service in SINGLE_REPLICA:
        assert read[service] == 1, f"{overlay}: {service} runs {read[service]} replicas"
    if overlay == "dev":
        assert set(read.values()) == {1}, "dev runs one of everything"
    if shutil.which("kubectl") is not None:
        rendered = {
            d["metadata"]["name"]: d["spec"].get("replicas", 1)
            for d in _render(overlay)
            if d["kind"] in WORKLOADS
        }
        assert rendered == {name: 1 if count is None else count for name, count in read.items()}
        for service in SINGLE_REPLICA:
            assert rendered[service] == 1, f"{overlay}: {service} renders {rendered[service]}"


def test_nothing_autoscales_or_blocks_the_single_replica_services() -> None:
    for path, doc in ALL:
        where = path.relative_to(ROOT)
        if doc.get("kind") == "HorizontalPodAutoscaler":
            scaled = doc["spec"]["scaleTargetRef"]["name"]
            assert scaled not in SINGLE_REPLICA, f"{where}: autoscales {scaled}"
        if doc.get("kind") != "PodDisruptionBudget":
            continue
        selects = set(doc["spec"]["selector"].get("matchLabels", {}).values())
        if not selects & SINGLE_REPLICA:
            continue
        # With one replica, minAvailable >= 1 or maxUnavailable 0 blocks every node drain.
        spec = doc["spec"]
        assert "minAvailable" not in spec, f"{where}: minAvailable on a single replica"
        assert str(spec.get("maxUnavailable", 1)) not in {"0", "0%"}, f"{where}: maxUnavailable 0"


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
    docs = _render(overlay)
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in WORKLOADS}
    assert set(workloads) == set(SERVICES)
    for service, workload in workloads.items():
        _check_data_volume(service, workload)
    assert sum(d["kind"] == "KafkaTopic" for d in docs) == len(CATALOG)
