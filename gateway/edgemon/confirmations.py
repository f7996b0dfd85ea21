"""The gateway's end-to-end confirmations, its I/O edge (the rules are confirm.py's, pure): fed by
the journal thread with the records of each frame once it is fsync'd, it publishes each keyed
node's confirmation (retained, QoS 1, signed with the node's key) and, with a shared group, this
gateway's claim for its peers; it takes the peers' claims; it saves each node's confirmed point
(state_dir/confirmed.json, written atomically) so a restart confirms no less and completeness
expects a node from there. After every (re)connect to the broker it asks every known node to send
its unconfirmed records again ("again"): what a node sent while no gateway was subscribed (a
broker that lost the gateway's session) had no one to go to.

Nodes without a key are not confirmed (a confirmation they could not check would let anyone make
them drop data); they keep trusting the PUBACK (firmware queue.confirm_s).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from .confirm import Confirmer, claim_topic, confirm_topic
from .contract import ContractError, split_signature
from .keys import sign

if TYPE_CHECKING:
    from .ingest import Gateway

log = logging.getLogger("edgemon.ingest")
FILE_NAME = "confirmed.json"


INFLIGHT_WAIT_MS = 60_000  # a confirmation never acknowledged (lost with a connection) stops blocking after this


def _acked(info: Any) -> bool:
    """The broker acknowledged it, or it is no longer worth waiting for: published while the link
    was down (paho sends it after the reconnect, but its info keeps the error and is_published()
    raises) or refused by paho's queue."""
    try:
        return info.is_published()
    except (RuntimeError, ValueError):
        return True


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Confirmations:
    def __init__(self, gw: Gateway):
        self.gw = gw
        self.confirmer: Confirmer | None = None
        self._reconnected = threading.Event()  # set by paho's thread, taken by the journal's
        self._saved: dict[str, int] = {}
        self.published = 0  # confirmations sent (stats)
        # node -> (the last confirmation's and claim's MQTTMessageInfo, when sent): a newer one
        # waits until the broker has acknowledged it. A confirmation is cumulative, so one in
        # flight per node is enough, and paho's outgoing queue stays bounded by the node count
        # (unbounded, 1,000 nodes confirmed each second under a backlog grew the gateway by 110 MB).
        self._inflight: dict[str, tuple[list[Any], int]] = {}

    @property
    def path(self):
        return self.gw.cfg.state_dir / FILE_NAME

    def open(self) -> None:
        cfg = self.gw.cfg
        state: dict[str, int] = {}
        if self.path.exists():
            try:
                state = {k: int(v) for k, v in json.loads(self.path.read_text()).items()}
            except (ValueError, AttributeError) as exc:  # torn by a crash: nodes send again, nothing lost
                log.warning("%s unreadable (%s): confirmations start again from the nodes' own floors", self.path, exc)
        self._saved = dict(state)
        if cfg.confirm and not cfg.fsync:
            log.warning("confirm is off: [gateway] fsync = false, and a frame not fsync'd may not be confirmed")
        if cfg.confirm and cfg.fsync:
            self.confirmer = Confirmer(cfg.client_id, int(cfg.confirm_interval_s * 1000), state)

    def starts(self) -> dict[str, int]:
        """Where completeness expects a node it has not seen: after its confirmed point."""
        return {name: upto + 1 for name, upto in self._saved.items() if upto > 0}

    def _key(self, site: str, node: str) -> bytes | None:
        keys = self.gw.verifier.keys
        return keys.get(f"{site}/{node}") if keys else None

    # ---- journal thread

    def stored(self, head_m: list[list[Any]]) -> None:
        """The frame's [site, node, [seq, ...]] entries, now on disk."""
        c = self.confirmer
        if c is None:
            return
        for site, node, seqs in head_m:
            if self._key(site, node) is not None:
                c.stored(site, node, seqs)

    def claim(self, topic: str, payload: bytes) -> None:
        """A peer gateway's claim (edge/v1/{site}/{node}/stored/{gw}); ContractError when it is not one."""
        parts = topic.split("/")
        if len(parts) != 6:
            raise ContractError(f"topic {topic!r}: a claim is edge/v1/{{site}}/{{node}}/stored/{{gateway}}")
        site, node = parts[2], parts[3]
        if not payload:
            return  # a cleared retained claim
        key = self._key(site, node)
        body, sig = split_signature(payload)
        if key is None or sig is None or not hmac.compare_digest(sign(body, key), sig.lower()):
            raise ContractError(f"claim for {site}/{node}: not signed with the node's key (a forged claim "
                                "could make a node drop records no store holds)")
        if self.confirmer is not None:
            reason = self.confirmer.peer_claim(site, node, payload)
            if reason:
                raise ContractError(f"claim for {site}/{node}: {reason}")

    def reconnected(self) -> None:
        """paho's thread, at every CONNACK."""
        self._reconnected.set()

    def publish_due(self) -> None:
        """Publish what is due; save the confirmed points that moved (journal thread)."""
        c = self.confirmer
        client = self.gw._session.client
        if c is None or client is None:
            return
        if self._reconnected.is_set():
            self._reconnected.clear()
            c.ask_again()
        now = _now_ms()
        shared = bool(self.gw.cfg.shared_group)
        sent = False
        for name, n in c.due(now):
            site, node = name.split("/", 1)
            key = self._key(site, node)
            if key is None:
                continue
            held = self._inflight.get(name)
            if held is not None and now - held[1] < INFLIGHT_WAIT_MS and not all(_acked(i) for i in held[0]):
                continue  # still dirty: it goes once the one before is acknowledged
            infos = [client.publish(confirm_topic(site, node), c.confirmation(n, now, key), qos=1, retain=True)]
            if shared:
                infos.append(client.publish(claim_topic(site, node, c.gateway_id), c.claim(n, key), qos=1, retain=True))
            self._inflight[name] = (infos, now)
            c.published(n, now)
            self.published += 1
            sent = True
        if sent:  # (saved as often as confirmations go out, not at every frame)
            state = c.state()
            if state != self._saved:
                self._save(state)

    def _save(self, state: dict[str, int]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, separators=(",", ":")))
        os.replace(tmp, self.path)  # a stale file only confirms less: no fsync needed for safety
        self._saved = state
