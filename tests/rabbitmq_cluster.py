"""A 3-node RabbitMQ cluster on this host, beside the machine's own broker, for the cluster test.

Each node has its own name (`cbtest<n>@localhost`), AMQP port (BASE_PORT + n), distribution
port, data and log folders (under the test's folder) and a cookie of the suite's own; no plugins,
listeners on 127.0.0.1 only, `cluster_partition_handling = pause_minority` as the README advises.
Nodes 2 and 3 join node 1 (`rabbitmqctl join_cluster`). Everything is stopped and deleted
afterwards; nodes left running by a run that was killed are stopped before a new one starts.
"""

import contextlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SBIN = Path("/usr/lib/rabbitmq/bin")  # Debian's rabbitmq-server: the scripts that run as root
COOKIE = "callbridge-test-cluster-cookie"
BASE_PORT = 5690
SIZE = 3


@dataclass(frozen=True)
class Node:
    number: int
    folder: Path

    @property
    def name(self) -> str:
        return f"cbtest{self.number}@localhost"

    @property
    def port(self) -> int:
        return BASE_PORT + self.number

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def environment(self) -> dict[str, str]:
        folder = self.folder
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(folder),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(20000 + self.port),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_PID_FILE": str(folder / "pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
            "RABBITMQ_USE_LONGNAME": "false",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": f"-setcookie {COOKIE}",
        }


def available() -> str | None:
    """None where the cluster can run here; else why not."""
    if not (SBIN / "rabbitmq-server").exists():
        return f"no {SBIN / 'rabbitmq-server'} (Debian's rabbitmq-server package)"
    if os.geteuid() != 0:
        return "the test nodes run as root (Debian's scripts switch user otherwise)"
    return None


class Cluster:
    def __init__(self, folder: Path) -> None:
        self.nodes = [Node(n, folder / f"node{n}") for n in range(1, SIZE + 1)]

    @property
    def urls(self) -> str:
        """`[bus] amqp_url` for the cluster: every node, node 1 first."""
        return ",".join(node.url for node in self.nodes)

    def ctl(self, node: Node, *words: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [str(SBIN / "rabbitmqctl"), "-q", "--erlang-cookie", COOKIE, "-n", node.name, *words],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(words)} on {node.name}: {done.stderr or done.stdout}")
        return done.stdout

    def form(self) -> None:
        """Start the nodes side by side, then join nodes 2 and 3 to node 1."""
        self.destroy()  # a killed run's nodes
        for node in self.nodes:
            node.folder.mkdir(parents=True)
            (node.folder / "enabled_plugins").write_text("[].\n")
            (node.folder / "rabbitmq.conf").write_text(
                "cluster_partition_handling = pause_minority\nloopback_users = none\n"
            )
            self.start(node, wait=False)
        for node in self.nodes:
            self.wait(node)
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", self.nodes[0].name)
            self.ctl(node, "start_app")
        assert self.running() == {node.name for node in self.nodes}, self.running()

    def start(self, node: Node, *, wait: bool = True) -> None:
        subprocess.run(
            [str(SBIN / "rabbitmq-server"), "-detached"], env=node.environment(), check=True, timeout=60
        )
        if wait:
            self.wait(node)

    def wait(self, node: Node) -> None:
        deadline = time.monotonic() + 90
        while not (node.folder / "pid").exists():  # written as the node boots
            assert time.monotonic() < deadline, f"{node.name} did not start: {self.log(node)}"
            time.sleep(0.1)
        self.ctl(node, "wait", str(node.folder / "pid"), "--timeout", "90")
        self.ctl(node, "await_startup", "--timeout", "90")

    def stop(self, node: Node) -> None:
        """Stop the node's Erlang VM, as a host going down cleanly would."""
        self.ctl(node, "stop")

    def running(self) -> set[str]:
        """The cluster's running nodes, as the first live node sees them."""
        status = self._ask_any("cluster_status", "--formatter", "json")
        return set(json.loads(status)["running_nodes"]) if status is not None else set()

    def leaders(self, prefix: str) -> dict[str, str]:
        """The node that leads each quorum queue under `prefix`."""
        listed = self._ask_any("list_queues", "name", "leader", "--no-table-headers") or ""
        rows = [line.split("\t") for line in listed.splitlines() if line.startswith(prefix)]
        return {row[0]: row[1] for row in rows if len(row) == 2 and row[1]}  # quorum queues

    def _ask_any(self, *words: str) -> str | None:
        """What the first node that answers says to `rabbitmqctl words`; None if none does."""
        for node in self.nodes:
            try:
                return self.ctl(node, *words)
            except RuntimeError:
                continue
        return None

    def log(self, node: Node) -> str:
        logs = sorted((node.folder / "log").glob("*.log")) if (node.folder / "log").exists() else []
        return "".join(path.read_text()[-3000:] for path in logs)

    def destroy(self) -> None:
        """Stop every node (a node that does not answer is killed) and delete its folder."""
        for node in self.nodes:
            try:
                self.ctl(node, "stop", timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired):
                pid = node.folder / "pid"
                if pid.exists():
                    with contextlib.suppress(ValueError, ProcessLookupError):
                        os.kill(int(pid.read_text().strip()), 9)
            shutil.rmtree(node.folder, ignore_errors=True)
