"""vidstyle on a real Ray cluster: a head and a worker node started with ``ray start`` as
their own processes, and the CLI as a separate client of it.

tests/test_distributed.py covers the same code on an in-process local instance; this adds
what only a cluster has: a driver that joins by address (``--ray HOST:PORT``, ``--ray auto``
with ``RAY_ADDRESS``), tasks on a second raylet, and processes that outlive the client.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'vidstyle[ray]')")

pytestmark = pytest.mark.slow

RAY = Path(sys.executable).with_name("ray")
# As in tests/test_distributed.py: a real render at about a second per frame on a CPU.
TINY = ["--first-iterations", "3", "--iterations", "2", "--max-side", "64", "-q"]
CLIP_FRAMES = 12  # the tiny_clip fixture

# Seconds. Measured on two shared cores: a node starts in 5-10 s, each render below takes
# 30-40 s, a node stops in a few seconds.
START_TIMEOUT_S = 90
RENDER_TIMEOUT_S = 180
STOP_TIMEOUT_S = 30


@dataclass(frozen=True)
class Node:
    name: str
    temp_dir: Path
    """Ray's root folder for this node alone: sockets, session and logs."""
    node_manager_port: int
    process: subprocess.Popen[bytes]
    """``ray start --block``: it leads its own process group, which holds every process of
    the node (GCS, raylet, agents, workers)."""


@dataclass(frozen=True)
class TwoNodes:
    address: str
    """``HOST:PORT`` of the head's GCS, as a user passes it to ``--ray``."""
    head: Node
    worker: Node
    env: dict[str, str]
    """The environment for every process that talks to the cluster."""

    def tasks_run(self, name: str) -> dict[str, int]:
        """How many times each node has started a Ray task of the function ``name`` (with or
        without a leading underscore) so far.

        Every Ray worker writes a ``:task_name:NAME`` line into its log file when a task
        starts (the prefix that ``log_to_driver`` uses to label output), and each node keeps
        its logs in its own temp dir: what Ray's state API would say, without the dashboard
        it needs.
        """
        prefix = ":task_name:"
        counts = {}
        for node in (self.head, self.worker):
            logs = node.temp_dir / "session_latest" / "logs"
            counts[node.name] = sum(
                1
                for path in logs.glob("worker-*.out")
                for line in path.read_text(errors="replace").splitlines()
                if line.startswith(prefix) and line[len(prefix):].lstrip("_") == name
            )
        return counts


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports free now on every interface (Ray's servers listen on all)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("", 0))
        return [s.getsockname()[1] for s in sockets]


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _group_members(pgids: set[int]) -> list[str]:
    """``PID COMMAND`` of every live process in the process groups ``pgids``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended while we looked
            continue
        # After the command name in parentheses: state, ppid, pgrp, session.
        state, _, pgrp, session = stat.rsplit(")", 1)[1].split()[:4]
        if state != "Z" and (int(pgrp) in pgids or int(session) in pgids):
            found.append(f"{entry.name} {cmdline.strip()[:200]}")
    return found


def _processes_mentioning(text: str) -> list[str]:
    """``PID COMMAND`` of every live process whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(f"{entry.name} {cmdline.strip()[:200]}")
    return found


def _start_node(name: str, root: Path, logs: Path, env: dict[str, str], *args: str) -> Node:
    """``ray start --block`` for one node; returns once the node is up.

    Skips the test when the node cannot start (no permission to open ports or sockets, no
    shared memory, too slow a machine): that says nothing about vidstyle.
    """
    temp_dir = root / name
    temp_dir.mkdir()
    # Every port a node opens, its own: two nodes on one host must not share any, and Ray's
    # fixed defaults (the dashboard agent's 52365, the Ray Client server's 10001) would also
    # collide with any other Ray on this machine.
    manager, objects, metrics, agent_http, agent_grpc, runtime_env = _free_ports(6)
    command = [
        str(RAY), "start", "--block", "--node-ip-address", "127.0.0.1",
        "--num-cpus", "1", "--num-gpus", "0", "--object-store-memory", str(100 * 2**20),
        "--temp-dir", str(temp_dir), "--disable-usage-stats",
        "--node-manager-port", str(manager), "--object-manager-port", str(objects),
        "--metrics-export-port", str(metrics), "--dashboard-agent-listen-port", str(agent_http),
        "--dashboard-agent-grpc-port", str(agent_grpc),
        "--runtime-env-agent-port", str(runtime_env), *args,
    ]  # fmt: skip
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        # A session of its own: the node's processes can then be found, and ended, by its id.
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    node = Node(name, temp_dir, manager, process)
    # `ray start` writes the GCS address into its temp dir once all the node's processes run.
    ready = temp_dir / "ray_current_cluster"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready.exists():
        exited = process.poll() is not None
        if exited or time.monotonic() > deadline:
            _stop(node)
            what = "exited" if exited else f"did not start in {START_TIMEOUT_S} s"
            pytest.skip(f"`ray start` ({name}) {what} on this machine:\n{_tail(log)}")
        time.sleep(0.2)
    return node


def _stop(node: Node) -> None:
    """Stop a node: SIGTERM to ``ray start --block``, which stops its processes, then
    SIGKILL to whatever of its process group is still there."""
    process = node.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT_S)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _group_members({process.pid}) and time.monotonic() < deadline:
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT_S)


# A client that joins the cluster and lists its nodes once the worker node has registered.
LIST_NODES = """\
import json, logging, sys, time
import ray

ray.init(address=sys.argv[1], log_to_driver=False, logging_level=logging.ERROR)
deadline = time.monotonic() + float(sys.argv[2])
while True:
    alive = [n for n in ray.nodes() if n["Alive"]]
    if len(alive) >= 2 or time.monotonic() > deadline:
        break
    time.sleep(0.5)
print(json.dumps([[n["NodeManagerPort"], n["Resources"].get("CPU", 0)] for n in alive]))
"""


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNodes]:
    """A Ray head and one worker node on this machine, each with one CPU, for the module."""
    if not sys.platform.startswith("linux"):
        pytest.skip("Ray runs more than one node only on Linux")
    if not RAY.exists():
        pytest.skip(f"no `ray` command beside {sys.executable}")
    logs = tmp_path_factory.mktemp("ray-cluster")
    # Not under tmp_path: Ray's sockets live in TEMP_DIR/session_<date>_<pid>/sockets/, and a
    # Unix socket's path must stay under 108 bytes, which pytest's folders leave no room for.
    root = Path(tempfile.mkdtemp(prefix="vidstyle-ray-"))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    env.update(
        OMP_NUM_THREADS="1",
        # Ray replaces a loopback --node-ip-address by this machine's own address (so other
        # machines could join) and its servers listen on every interface: a token keeps
        # anyone else from using the cluster while it runs. Rays before 2.52 ignore these.
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),
    )
    nodes: list[Node] = []
    try:
        gcs, dashboard, client = _free_ports(3)
        head_args = ["--head", "--port", str(gcs), "--include-dashboard", "false",
                     "--dashboard-port", str(dashboard)]
        if importlib.util.find_spec("grpc") is not None:  # Ray Client is installed: a server
            head_args += ["--ray-client-server-port", str(client)]
        nodes.append(_start_node("head", root, logs, env, *head_args))
        address = f"127.0.0.1:{gcs}"
        nodes.append(_start_node("worker", root, logs, env, "--address", address))

        proc = subprocess.run(
            [sys.executable, "-c", LIST_NODES, address, "60"], env=env, capture_output=True,
            text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        alive = sorted(tuple(n) for n in json.loads(proc.stdout.splitlines()[-1]))
        assert alive == sorted((n.node_manager_port, 1.0) for n in nodes), (
            f"expected our 2 nodes of 1 CPU alive, got {alive} (ports, CPUs)"
        )
        yield TwoNodes(address, nodes[0], nodes[1], env)
    finally:
        for node in reversed(nodes):
            _stop(node)
        left = _group_members({n.process.pid for n in nodes}) + _processes_mentioning(str(root))
        shutil.rmtree(root, ignore_errors=True)
        assert not left, "Ray processes outlived the cluster:\n" + "\n".join(left)


def _vidstyle(cluster: TwoNodes, cwd: Path, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "vidstyle", *args], cwd=cwd, env=env or cluster.env,
        capture_output=True, text=True, timeout=RENDER_TIMEOUT_S,
    )
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_two_chunks_render_on_the_two_nodes(
    two_nodes: TwoNodes, tiny_clip: Path, styles: list[Path], tmp_path: Path
) -> None:
    before = two_nodes.tasks_run("render_task")
    out = tmp_path / "chunked.mp4"
    proc = _vidstyle(
        two_nodes, tmp_path, "run", str(tiny_clip), "--style", str(styles[0]), "-o", str(out),
        "--chunks", "2", "--ray", two_nodes.address, "--seam-window", "1", "--preroll", "1",
        *TINY,
    )
    assert f"wrote {out}: {CLIP_FRAMES} frames" in proc.stdout
    # 2 workers: the CPUs of both nodes.
    assert "2 chunks on Ray (2 workers), 1 seam reconciled" in proc.stdout
    assert _frames(out) == CLIP_FRAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunked.mp4"], "work folder left"
    after = two_nodes.tasks_run("render_task")
    ran = {name: after[name] - before[name] for name in after}
    assert sum(ran.values()) == 2, ran
    # Which node renders which chunk is Ray's choice, and both may land on one: a render task
    # first waits (ray.get) for the progress actor, and while it waits Ray lends its CPU back
    # to the node, which can then start the other chunk there too. So the chunks are counted
    # over both nodes; the storage check, pinned to every node, shows the worker node served
    # this client.
    assert two_nodes.tasks_run("node_problems")["worker"] >= 1


BATCH = """\
inputs = ["clips/*.mp4"]
styles = ["ink.jpg"]
max_side = 64
frames = "0:2"

[optim]
first_iterations = 3
iterations = 2
"""


def test_batch_on_the_cluster_that_ray_address_names(
    two_nodes: TwoNodes, tiny_clip: Path, styles: list[Path], tmp_path: Path
) -> None:
    (tmp_path / "clips").mkdir()
    for name in ("a", "b"):
        shutil.copy(tiny_clip, tmp_path / "clips" / f"{name}.mp4")
    shutil.copy(styles[0], tmp_path / "ink.jpg")
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(textwrap.dedent(BATCH))
    out_dir = tmp_path / "renders"
    before = two_nodes.tasks_run("render_task")

    proc = _vidstyle(
        two_nodes, tmp_path, "batch", str(recipe), "--out-dir", str(out_dir), "--ray", "auto",
        "-q", env={**two_nodes.env, "RAY_ADDRESS": two_nodes.address},
    )
    lines = proc.stdout.splitlines()
    assert lines[-1] == "2 of 2 outputs ok", proc.stdout
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.tiny.mp4", "b.tiny.mp4"]
    for name in ("a", "b"):
        output = out_dir / f"{name}.tiny.mp4"
        assert any(x.startswith(f"rendered    {output}: 2 frames") for x in lines), proc.stdout
        assert _frames(output) == 2
    after = two_nodes.tasks_run("render_task")
    assert sum(after.values()) - sum(before.values()) == 2, (before, after)
