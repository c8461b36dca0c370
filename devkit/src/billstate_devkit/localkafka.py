"""A real single-node Kafka (KRaft) on loopback, fetched with Maven: `up|down|status|clean`."""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.25.3"
DEFAULT_PORT = 39092
# A broker takes its port and the next four (controller, SCRAM, -, SASL_SSL); a pytest-xdist
# worker's broker starts this many ports after the previous worker's.
PORTS_PER_WORKER = 10
STARTED_MARKER = "Kafka Server started"
# A super user on the SCRAM listeners: what applies ACLs as an operator would.
ADMIN_USER = "billstate-admin"

# Kafka 4 logs through log4j2 behind slf4j 1.7, so the slf4j 1.x binding is what it needs.
POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>billstate.local</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""

LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class LocalKafkaError(RuntimeError):
    """The local broker could not be fetched, started or reached; the message says what to do."""


def _repo_root() -> Path:
    start = Path.cwd().resolve()
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text(encoding="utf-8"):
            return folder
    return start


@dataclass(frozen=True)
class Layout:
    """Where the broker's jars, config, data and log live (all under an ignored cache folder)."""

    root: Path
    port: int
    name: str = "run"  # the folder of this broker's config, data and log, beside the jars

    @classmethod
    def from_env(cls) -> Layout:
        """From BILLSTATE_CACHE_DIR and BILLSTATE_KAFKA_PORT; a pytest-xdist worker past the
        first (gwN) gets its own broker, N * PORTS_PER_WORKER ports up, on the same jars."""
        cache = os.environ.get("BILLSTATE_CACHE_DIR")
        root = Path(cache) if cache else _repo_root() / ".cache"
        port = int(os.environ.get("BILLSTATE_KAFKA_PORT", DEFAULT_PORT))
        worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
        if worker:
            return cls(root / "kafka", port + worker * PORTS_PER_WORKER, f"run-gw{worker}")
        return cls(root=root / "kafka", port=port)

    @property
    def libs(self) -> Path:
        return self.root / KAFKA_VERSION / "libs"

    @property
    def run(self) -> Path:
        return self.root / self.name

    @property
    def data(self) -> Path:
        return self.run / "data"

    @property
    def log(self) -> Path:
        return self.run / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.run / "broker.pid"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_port(self) -> int:
        return self.port + 2

    @property
    def sasl_bootstrap(self) -> str:
        """The SASL_PLAINTEXT (SCRAM-SHA-512) listener, for authentication tests."""
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def ssl_port(self) -> int:
        return self.port + 4

    @property
    def ssl_bootstrap(self) -> str:
        """The SASL_SSL (SCRAM-SHA-512 over TLS) listener, as on a Strimzi cluster."""
        return f"127.0.0.1:{self.ssl_port}"

    @property
    def tls(self) -> Path:
        """The throwaway CA and the broker's key and certificate, made at each start."""
        return self.run / "tls"

    @property
    def ca_file(self) -> Path:
        """The PEM certificate of the CA that signed the TLS listener's certificate."""
        return self.tls / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.tls / "broker.pem"


def _need(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise LocalKafkaError(f"{tool} not found: {hint}")
    return path


def _check_java() -> str:
    java = _need(
        "java",
        "the local Kafka broker needs Java 17 or newer"
        " (e.g. `apt-get install openjdk-17-jre-headless`),"
        " or point KAFKA_BOOTSTRAP_SERVERS at an existing cluster",
    )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', out)
    if match is None or int(match.group(1)) < 17:
        raise LocalKafkaError(
            f"Kafka {KAFKA_VERSION} needs Java 17 or newer; `java -version` says: {out.strip()}"
        )
    return java


def fetch(layout: Layout) -> Path:
    """Resolve the pinned broker jars into the cache once; later calls reuse them."""
    if (layout.libs / ".complete").is_file():
        return layout.libs
    mvn = _need(
        "mvn",
        "the broker jars are fetched from Maven Central with Maven (e.g. `apt-get install maven`),"
        " or point KAFKA_BOOTSTRAP_SERVERS at an existing cluster",
    )
    work = layout.root / KAFKA_VERSION
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(POM, encoding="utf-8")
    partial = work / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    print(f"localkafka: fetching Apache Kafka {KAFKA_VERSION} jars with Maven ...", file=sys.stderr)
    result = subprocess.run(
        [mvn, "-B", "-q", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
         f"-DoutputDirectory={partial}", "-DincludeScope=runtime"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise LocalKafkaError(
            f"Maven could not fetch Kafka {KAFKA_VERSION}:\n"
            f"{result.stdout[-3000:]}{result.stderr[-2000:]}"
        )
    shutil.rmtree(layout.libs, ignore_errors=True)
    partial.rename(layout.libs)
    (layout.libs / ".complete").write_text(KAFKA_VERSION, encoding="utf-8")
    return layout.libs


def _properties(layout: Layout) -> str:
    controller = layout.port + 1
    # Replication factor 1 for the internal topics: one node must be enough for transactions.
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller}",
        (f"listeners=PLAINTEXT://127.0.0.1:{layout.port},CONTROLLER://127.0.0.1:{controller},"
         f"SASL_PLAINTEXT://127.0.0.1:{layout.sasl_port},SASL_SSL://127.0.0.1:{layout.ssl_port}"),
        (f"advertised.listeners=PLAINTEXT://127.0.0.1:{layout.port},"
         f"SASL_PLAINTEXT://127.0.0.1:{layout.sasl_port},SASL_SSL://127.0.0.1:{layout.ssl_port}"),
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        ("listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
         "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"),
        # SCRAM listeners like a Strimzi cluster's, so clients' authentication is tested
        # for real; users are added with add_scram_user.
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        ("listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config="
         "org.apache.kafka.common.security.scram.ScramLoginModule required;"),
        ("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
         "org.apache.kafka.common.security.scram.ScramLoginModule required;"),
        # TLS with the throwaway CA made at start (make_tls): PEM files, no JKS.
        "listener.name.sasl_ssl.ssl.keystore.type=PEM",
        f"listener.name.sasl_ssl.ssl.keystore.location={layout.keystore}",
        "listener.name.sasl_ssl.ssl.truststore.type=PEM",
        f"listener.name.sasl_ssl.ssl.truststore.location={layout.ca_file}",
        # ACLs are enforced. The plain and controller listeners authenticate nobody, so their
        # principal, User:ANONYMOUS, is a super user: the broker talks to its own controller
        # and every test on the plain port does what it always did. So is the admin user.
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users=User:ANONYMOUS;User:{ADMIN_USER}",
        f"log.dirs={layout.data}",
        "num.partitions=1",
        "auto.create.topics.enable=false",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=10",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=10",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "log.segment.bytes=67108864",
        "",
    ])  # fmt: skip


def make_tls(layout: Layout) -> None:
    """A new CA and a broker certificate for 127.0.0.1 and localhost, as PEM files: the CA's
    certificate for clients (`ca_file`), the key and chain for the broker (`keystore`)."""
    ca = trustme.CA(organization_name="billstate local broker")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    # Kafka reads an unencrypted PEM key only as PKCS#8; trustme writes the OpenSSL form.
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    layout.tls.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(layout.ca_file))
    layout.keystore.touch(mode=0o600)
    layout.keystore.write_bytes(pkcs8 + chain)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); /proc tells the truth.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and ") Z " in stat.read_text())


def _our_pid(layout: Layout) -> int | None:
    try:
        pid = int(layout.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if _alive(pid) and (not cmdline.exists() or b"kafka.Kafka" in cmdline.read_bytes()):
        return pid
    return None


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def status(layout: Layout) -> dict[str, str]:
    pid = _our_pid(layout)
    return {
        "state": "running"
        if pid and _port_open(layout.port)
        else ("starting" if pid else "stopped"),
        "pid": str(pid or "-"),
        "bootstrap": layout.bootstrap,
        "scram": layout.sasl_bootstrap,
        "sasl_ssl": layout.ssl_bootstrap,
        "ca": str(layout.ca_file),
        "version": KAFKA_VERSION,
        "log": str(layout.log),
        "data": str(layout.data),
    }


def up(layout: Layout, timeout: float = 120.0) -> str:
    """Start the broker unless ours is already running; return its bootstrap address."""
    java = _check_java()
    if (pid := _our_pid(layout)) is not None:
        _wait_started(layout, pid, offset=0, timeout=timeout)
        return layout.bootstrap
    if _port_open(layout.port):
        raise LocalKafkaError(
            f"port {layout.port} is taken by another process;"
            " set BILLSTATE_KAFKA_PORT to a free port"
            " or KAFKA_BOOTSTRAP_SERVERS to that cluster"
        )
    libs = fetch(layout)
    layout.run.mkdir(parents=True, exist_ok=True)
    make_tls(layout)
    props = layout.run / "server.properties"
    props.write_text(_properties(layout), encoding="utf-8")
    log4j = layout.run / "log4j2.properties"
    log4j.write_text(LOG4J2.format(log=layout.log), encoding="utf-8")
    classpath = f"{libs}/*"
    if not (layout.data / "meta.properties").is_file():
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        fmt = subprocess.run(
            [java, "-cp", classpath, f"-Dlog4j2.configurationFile={log4j}",
             "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if fmt.returncode != 0:
            raise LocalKafkaError(f"formatting KRaft storage failed:\n{fmt.stdout}{fmt.stderr}")
    offset = layout.log.stat().st_size if layout.log.exists() else 0
    with (layout.run / "broker.out").open("ab") as out:
        proc = subprocess.Popen(
            [java, "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true",
             f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath, "kafka.Kafka", str(props)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    layout.pid_file.write_text(str(proc.pid), encoding="utf-8")
    _wait_started(layout, proc.pid, offset=offset, timeout=timeout)
    return layout.bootstrap


def add_scram_user(
    layout: Layout, name: str, password: str, mechanism: str = "SCRAM-SHA-512"
) -> None:
    """Create or update a SCRAM user on the running local broker (kafka-configs, in-process
    Java: the admin API for SCRAM credentials is not in aiokafka)."""
    java = _check_java()
    log4j = layout.run / "log4j2.properties"
    done = subprocess.run(
        [java, "-cp", f"{layout.libs}/*", f"-Dlog4j2.configurationFile={log4j}",
         "kafka.admin.ConfigCommand", "--bootstrap-server", layout.bootstrap, "--alter",
         "--add-config", f"{mechanism}=[password={password}]",
         "--entity-type", "users", "--entity-name", name],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        # The tool echoes its arguments on some errors: keep the password out of the message.
        text = (done.stdout + done.stderr).replace(password, "[redacted]")
        raise LocalKafkaError(f"adding SCRAM user {name} failed:\n{text[-2000:]}")


def _wait_started(layout: Layout, pid: int, offset: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            tail = layout.log.read_text(errors="replace")[-3000:] if layout.log.exists() else ""
            raise LocalKafkaError(f"the broker exited while starting; see {layout.log}\n{tail}")
        if layout.log.exists():
            with layout.log.open("rb") as fh:
                fh.seek(offset)
                started = STARTED_MARKER.encode() in fh.read()
            # A restarted `up` on a running broker passes offset 0 and finds the old marker.
            if started and _port_open(layout.port):
                return
        time.sleep(0.1)
    raise LocalKafkaError(f"the broker did not start within {timeout:.0f}s; see {layout.log}")


def down(layout: Layout, timeout: float = 30.0) -> bool:
    """Stop the broker this tooling started (by its pid); True when one was stopped."""
    pid = _our_pid(layout)
    if pid is None:
        layout.pid_file.unlink(missing_ok=True)
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
    layout.pid_file.unlink(missing_ok=True)
    return True


def clean(layout: Layout) -> None:
    """Stop the broker and delete its data and log (the jar cache stays)."""
    down(layout)
    shutil.rmtree(layout.run, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localkafka", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status", "clean", "fetch"])
    args = parser.parse_args(argv)
    layout = Layout.from_env()
    try:
        if args.action == "up":
            started = time.monotonic()
            bootstrap = up(layout)
            print(
                f"kafka {KAFKA_VERSION} is up at {bootstrap}"
                f" ({time.monotonic() - started:.1f}s); log: {layout.log}"
            )
        elif args.action == "down":
            print("kafka stopped" if down(layout) else "kafka was not running")
        elif args.action == "clean":
            clean(layout)
            print(f"kafka stopped and {layout.run} removed")
        elif args.action == "fetch":
            print(f"kafka {KAFKA_VERSION} jars in {fetch(layout)}")
        else:
            for key, value in status(layout).items():
                print(f"{key:>9}: {value}")
            return 0 if status(layout)["state"] == "running" else 3
    except LocalKafkaError as err:
        print(f"localkafka: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
