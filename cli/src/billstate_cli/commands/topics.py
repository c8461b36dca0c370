"""`billstate topics list|apply|strimzi|acls`: the catalog, applied to a cluster or rendered."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from billstate_shared.acls import SERVICES, Acl, apply_acls, service_acls
from billstate_shared.settings import ServiceSettings
from billstate_shared.topic_admin import apply_topics
from billstate_shared.topics import CATALOG, Topic


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    topics = sub.add_parser("topics", help="the topic catalog: list, apply to a cluster, render")
    actions = topics.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="print the catalog")
    listing.add_argument(
        "--who", action="store_true", help="who writes, reads and observes each topic instead"
    )
    listing.set_defaults(func=_list)

    apply = actions.add_parser(
        "apply", help="create missing topics; report drift (exit 1) instead of ignoring it"
    )
    apply.add_argument("--bootstrap", help="bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    apply.add_argument("--replication-factor", type=int, help="default: min(3, brokers)")
    apply.add_argument("--dry-run", action="store_true", help="only report what would change")
    apply.set_defaults(func=_apply)

    strimzi = actions.add_parser("strimzi", help="write Strimzi KafkaTopic manifests")
    strimzi.add_argument("--out", type=Path, required=True, help="file to write (YAML)")
    strimzi.add_argument("--cluster", default="billstate", help="strimzi.io/cluster label")
    strimzi.add_argument("--replicas", type=int, default=3)
    strimzi.set_defaults(func=_strimzi)

    acls = actions.add_parser(
        "acls", help="print each service's ACLs (from the catalog); --apply creates them"
    )
    acls.add_argument("--service", action="append", choices=SERVICES, help="default: all")
    acls.add_argument("--user", help="SCRAM user (default: the service name; one --service)")
    acls.add_argument("--group", help="consumer group (default: the service name)")
    acls.add_argument("--apply", action="store_true", help="create them, as KAFKA_* logs in")
    acls.add_argument("--bootstrap", help="bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    acls.set_defaults(func=_acls)


def _list(args: argparse.Namespace) -> int:
    if args.who:
        return _who()
    print(f"{'topic':<36} {'parts':>5} {'cleanup':<8} {'retention':>9}  key          carries")
    for t in CATALOG:
        retention = "forever" if t.retention_days is None else f"{t.retention_days}d"
        carries = ", ".join(t.event_types) or "dead letters"
        print(
            f"{t.name:<36} {t.partitions:>5} {t.cleanup:<8} {retention:>9}  {t.key:<12} {carries}"
        )
    return 0


def _who() -> int:
    # A reader dead-letters what it refuses; an observer (the console) keeps a read model
    # and refuses nothing, so only readers make a topic get a `.dlq`.
    def names(items: tuple[str, ...]) -> str:
        return ", ".join(items) or "-"

    print(f"{'topic':<36} {'written by':<26} {'read by':<40} observed by")
    for t in CATALOG:
        print(f"{t.name:<36} {names(t.writers):<26} {names(t.readers):<40} {names(t.observers)}")
    return 0


def _apply(args: argparse.Namespace) -> int:
    settings = ServiceSettings()  # bootstrap and security from KAFKA_* variables
    bootstrap = args.bootstrap or settings.kafka_bootstrap_servers
    report = asyncio.run(
        apply_topics(
            bootstrap,
            CATALOG,
            args.replication_factor,
            dry_run=args.dry_run,
            auth=settings.kafka_auth,
        )
    )
    verb = "would create" if args.dry_run else "created"
    for name in report.created:
        print(f"{verb}: {name}")
    print(
        f"topics on {bootstrap}: {len(report.created)} {verb}, {len(report.unchanged)} unchanged,"
        f" {len({d.topic for d in report.drift})} drifted"
        f" (replication factor {report.replication_factor})"
    )
    for drift in report.drift:
        print(f"drift: {drift}", file=sys.stderr)
    if report.drift:
        print(
            "drift is not fixed automatically: changing partitions repartitions customers;"
            " fix it deliberately (kafka-configs / kafka-topics) or recreate the topic.",
            file=sys.stderr,
        )
        return 1
    return 0


def strimzi_manifest(topics: tuple[Topic, ...], cluster: str, replicas: int) -> str:
    docs = []
    for t in topics:
        config = "\n".join(f'    {key}: "{value}"' for key, value in sorted(t.config.items()))
        docs.append(
            "apiVersion: kafka.strimzi.io/v1beta2\n"
            "kind: KafkaTopic\n"
            "metadata:\n"
            f"  name: {t.name.replace('.', '-').replace('_', '-')}\n"
            "  labels:\n"
            f"    strimzi.io/cluster: {cluster}\n"
            "spec:\n"
            f"  topicName: {t.name}\n"
            f"  partitions: {t.partitions}\n"
            f"  replicas: {replicas}\n"
            "  config:\n"
            f"{config}\n"
        )
    header = "# Generated by `billstate topics strimzi` from the topic catalog; do not edit.\n"
    return header + "---\n".join(docs)


def _strimzi(args: argparse.Namespace) -> int:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(strimzi_manifest(CATALOG, args.cluster, args.replicas), encoding="utf-8")
    print(f"wrote {len(CATALOG)} KafkaTopic resources to {args.out}")
    return 0


def _acls(args: argparse.Namespace) -> int:
    services = args.service or list(SERVICES)
    if (args.user or args.group) and len(services) != 1:
        print("--user and --group name one service's login: give one --service", file=sys.stderr)
        return 2
    bindings: list[Acl] = []
    for service in services:
        bindings.extend(service_acls(service, args.user, args.group))
    for acl in bindings:
        pattern = "" if acl.pattern == "literal" else f" ({acl.pattern})"
        print(f"{acl.principal:<28} {acl.operation:<16} {acl.resource_type:<6} {acl.name}{pattern}")
    if not args.apply:
        return 0
    settings = ServiceSettings()  # bootstrap and security from KAFKA_* variables: an admin
    bootstrap = args.bootstrap or settings.kafka_bootstrap_servers
    count = asyncio.run(apply_acls(bootstrap, bindings, auth=settings.kafka_auth))
    print(f"{count} ACLs in force on {bootstrap} for {', '.join(services)}")
    return 0
