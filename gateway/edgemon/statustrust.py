"""Which node status messages the gateway believes (docs/ARCHITECTURE.md, "Trust: which status
messages are believed"). Pure: the state is plain JSON, saved with the store's cursor.

A signature proves who wrote a status, not when: the node's retained status and its last will stay
readable on the broker, so a signed status can be replayed later by anyone who may publish there.
Since firmware 0.3.0 every status names its connection, `cn` = [boot, connection]: the boot count
kept on the node's flash and a counter of MQTT connections since that boot, so `cn` only grows.
The node signs its will when it connects, with the new cn; the same connection's online statuses
carry the same cn. Per node the gateway keeps the newest cn it accepted and whether that
connection has ended (an offline status for it was accepted). For a node whose signatures are
required (keys.Verifier.required):

- online with cn: accepted when cn is newer than the newest accepted, or the same while that
  connection has not ended; an older cn, or the cn of an ended connection, is a replay;
- offline (the will, or the node's own clean stop) with cn: accepted when cn is the newest
  accepted or newer (a will that fired before its online status got through); an older cn is a
  replay. Before any online status with a cn was accepted an offline cannot be matched to a
  connection and is not believed (silence marks a node offline);
- without cn (firmware 0.2): online is accepted as long as the node never sent a cn (a node that
  did is not downgraded); offline is not believed (firmware 0.2's will is one constant payload,
  signed once: it would be valid forever).
"""

from __future__ import annotations

from typing import Any

from .contract import ContractError, Status


class StatusTrust:
    def __init__(self, state: dict[str, Any] | None = None):
        # "site/node" -> [boot, connection, open]: the newest accepted cn, and whether it is live
        self.nodes: dict[str, list[Any]] = {k: list(v) for k, v in (state or {}).items()}

    def admit(self, site: str, node: str, status: Status) -> list[Any] | None:
        """Raise ContractError when the (already signature-checked) status is not believed.
        Returns the node's new entry [site, node, boot, connection, open] when it changes (for the
        store frame, so the change is as durable as the message), None otherwise. Call apply() with
        it to take it into the state."""
        key = f"{site}/{node}"
        last = self.nodes.get(key)
        cn = status.cn
        if status.online:
            if cn is None:
                if last is not None:
                    raise ContractError(
                        f"cn: missing; the statuses of {key} carry a connection id since connection "
                        f"{last[0]}.{last[1]}: an online status without one is an older firmware's, replayed")
                return None  # firmware 0.2: nothing to match it against
            if last is None or cn > (last[0], last[1]):
                return [site, node, cn[0], cn[1], True]
            if cn == (last[0], last[1]):
                if last[2]:
                    return None  # the periodic status of the live connection (or its retained copy)
                raise ContractError(
                    f"cn: connection {cn[0]}.{cn[1]} of {key} has ended (its offline status was accepted): "
                    f"a replayed online status")
            raise ContractError(self._older(key, cn, last))
        if cn is None:
            raise ContractError(
                f"cn: missing; an offline status of {key} is believed only when it names the connection "
                f"it ends ([boot, connection], firmware >= 0.3.0); silence marks a node offline")
        if last is None:
            raise ContractError(
                f"cn: no online status of {key} with a connection id accepted yet: offline for connection "
                f"{cn[0]}.{cn[1]} cannot be matched to it (silence marks a node offline)")
        if cn < (last[0], last[1]):
            raise ContractError(self._older(key, cn, last))
        if cn == (last[0], last[1]) and not last[2]:
            return None  # the same offline again (the retained will, delivered at each subscribe)
        return [site, node, cn[0], cn[1], False]

    @staticmethod
    def _older(key: str, cn: tuple[int, int], last: list[Any]) -> str:
        return (f"cn: connection {cn[0]}.{cn[1]} is older than {last[0]}.{last[1]}, the newest accepted "
                f"for {key}: a replayed status (a node whose flash was wiped starts again at 1.1: "
                f"see docs/ARCHITECTURE.md)")

    def apply(self, entry: list[Any]) -> None:
        site, node, boot, conn, live = entry
        self.nodes[f"{site}/{node}"] = [boot, conn, bool(live)]

    def to_json(self) -> dict[str, list[Any]]:
        return {k: list(v) for k, v in self.nodes.items()}
