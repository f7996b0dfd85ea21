"""`make bench`, the broker's references: how many QoS 1 messages/s Mosquitto carries from one
publisher to one subscriber on this machine, measured two ways in the same run as the gateway:

- paho: a bare paho subscriber and the project's paho publisher, each in its own process (the
  same client library and the same 1,000-site workload the gateway gets);
- C: Debian's mosquitto_pub (-l, one message per stdin line, 10,000 per run: it has no QoS 1
  window) and mosquitto_sub (-F %U: a receive timestamp per message), the broker's own ceiling
  with clients that cost next to nothing.

Each is first message received -> last message received at the subscriber.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..dev.stack import LocalStack, ensure_installed
from .loadgen import record_payload

TS0 = 1764000000000
CHUNK = 10_000


def reference_broker_paho(stack: LocalStack, n_msgs: int, tag: str, sites: int) -> float:
    from .gateway import bench_child  # (the child processes live with the gateway part)
    user, pw = stack.gateway_user, stack.gateway_password
    sub = bench_child(["subscribe", "--port", str(stack.mosquitto.port), "--user", user, "--n", str(n_msgs),
                       "--topic", f"edge/v1/+/{tag}/data", "--client-id", f"bench-bare-sub-{tag}"], pw)
    assert sub.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    pub = bench_child(["publish", "--port", str(stack.mosquitto.port), "--user", user, "--n", str(n_msgs),
                       "--sites", str(sites), "--prefix", "b", "--node", tag, "--client-id", f"bench-bare-pub-{tag}"], pw)
    pub.communicate(timeout=3600)
    out, _ = sub.communicate(timeout=3600)
    return n_msgs / float(out.strip().splitlines()[-1])


def reference_broker_c(stack: LocalStack, n_msgs: int, tag: str) -> float:
    tools = ensure_installed(("mosquitto_sub", "mosquitto_pub"))
    user, pw = stack.gateway_user, stack.gateway_password
    topic = f"edge/v1/cref/{tag}/data"
    with tempfile.TemporaryDirectory(prefix="edgemon-bench-c-") as tmp:
        # mosquitto_pub -l has no window for QoS 1: fed 60,000+ lines at once, the broker drops it
        # ("out of memory"). So it runs once per CHUNK lines (its connect is in the timing).
        chunks = []
        for start in range(0, n_msgs, CHUNK):
            path = Path(tmp) / f"payloads{start:08d}"
            with open(path, "wb") as f:
                for i in range(start, min(n_msgs, start + CHUNK)):
                    f.write(record_payload(i + 1, TS0 + i * 10_000, 1.0 + i) + b"\n")
            chunks.append(path)
        stamps = Path(tmp) / "stamps"
        with open(stamps, "wb") as out:
            sub = subprocess.Popen([tools["mosquitto_sub"], "-h", "127.0.0.1", "-p", str(stack.mosquitto.port),
                                    "-u", user, "-P", pw, "-i", f"bench-c-sub-{tag}", "-q", "1", "-t", topic,
                                    "-C", str(n_msgs), "-F", "%U"], stdout=out)
            time.sleep(1.0)  # subscribed (it prints nothing before the first message)
            for path in chunks:
                with open(path, "rb") as stdin:
                    subprocess.run([tools["mosquitto_pub"], "-h", "127.0.0.1", "-p", str(stack.mosquitto.port),
                                    "-u", user, "-P", pw, "-i", f"bench-c-pub-{tag}", "-q", "1", "-t", topic,
                                    "-l"], stdin=stdin, check=True, timeout=600)
            try:
                sub.wait(timeout=60)
            except subprocess.TimeoutExpired:
                sub.kill()
                sub.wait()
        got = stamps.read_text().split()
    if len(got) < n_msgs:
        raise RuntimeError(f"mosquitto_sub received {len(got)} of {n_msgs} messages")
    return (n_msgs - 1) / (float(got[-1]) - float(got[0]))


def drop_session(stack: LocalStack, client_id: str) -> None:
    """End a stopped gateway's persistent session (a clean-session connect with its id), so the
    broker stops queueing the next runs' messages for it."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True)
    c.username_pw_set(stack.gateway_user, stack.gateway_password)
    c.connect("127.0.0.1", stack.mosquitto.port)
    c.loop_start()
    time.sleep(0.3)
    c.disconnect()
    c.loop_stop()
