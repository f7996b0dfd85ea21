"""The CP (command parameters) field of an HJ 212 packet: `CP=&&...&&`.

Grammar (HJ 212-2017 6.3.3): `name=value` pairs; the values of one item are separated by `,`
(`w01018-Rtd=2.2,w01018-Flag=N`), items by `;`. Names are case-sensitive. Text (site log, i-codes)
sits between `//` and `//` and may hold any of `;,=&` (UTF-8). Parsed as an ordered list of groups,
each an ordered list of (name, value), so a packet re-encodes exactly as it came.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class CPError(ValueError):
    """The CP text does not follow the grammar; str() says where."""


@dataclass
class CP:
    groups: list[list[tuple[str, str]]] = field(default_factory=list)

    # ---- views

    def items(self) -> list[tuple[str, str]]:
        return [kv for g in self.groups for kv in g]

    def get(self, name: str, default: str | None = None) -> str | None:
        for k, v in self.items():
            if k == name:
                return v
        return default

    def pollutants(self) -> dict[str, dict[str, str]]:
        """{"w01018": {"Rtd": "2.2", "Flag": "N"}, ...} from the `code-Field` names."""
        out: dict[str, dict[str, str]] = {}
        for k, v in self.items():
            if "-" in k:
                code, _, kind = k.partition("-")
                out.setdefault(code, {})[kind] = v
        return out

    # ---- text

    def encode(self) -> str:
        return ";".join(",".join(f"{k}={v}" for k, v in g) for g in self.groups)

    @classmethod
    def build(cls, fields: dict[str, str] | None = None, pollutants: dict[str, dict[str, str]] | None = None) -> CP:
        """Top-level fields first (each its own item: DataTime, RtdInterval, ...), then one item
        per pollutant code with its values (`w01018-Rtd=...,w01018-Flag=N`)."""
        groups = [[(k, str(v))] for k, v in (fields or {}).items()]
        for code, values in (pollutants or {}).items():
            groups.append([(f"{code}-{kind}", str(v)) for kind, v in values.items()])
        return cls(groups)

    @classmethod
    def parse(cls, text: str) -> CP:
        groups: list[list[tuple[str, str]]] = []
        group: list[tuple[str, str]] = []
        i, n = 0, len(text)
        if n == 0:
            return cls([])
        while i < n:
            eq = text.find("=", i)
            if eq < 0:
                raise CPError(f"CP: '{text[i:i + 20]}' at {i} has no '=' (name=value expected)")
            name = text[i:eq]
            if not name or any(c in name for c in ";,&"):
                raise CPError(f"CP: bad name {name!r} at {i}")
            j = eq + 1
            if text.startswith("//", j):  # text value: up to the closing //
                end = text.find("//", j + 2)
                if end < 0:
                    raise CPError(f"CP: {name}: text opened with // at {j} is never closed")
                j = end + 2
                value = text[eq + 1:j]
            else:
                j = eq + 1
                while j < n and text[j] not in ";,":
                    j += 1
                value = text[eq + 1:j]
            group.append((name, value))
            if j >= n:
                break
            sep = text[j]
            if sep not in ";,":
                raise CPError(f"CP: {name}: ';' or ',' expected after its value at {j}, got {sep!r}")
            if sep == ";":
                groups.append(group)
                group = []
            i = j + 1
            if i == n:
                raise CPError(f"CP: ends with {sep!r}: a name=value is missing after it")
        groups.append(group)
        return cls(groups)


class OpaqueCP(CP):
    """A CP that is not name=value text: HJ 212-2025's SM4-encrypted CP (hex), kept and re-encoded as is."""

    def __init__(self, text: str):
        super().__init__([])
        self.text = text

    def encode(self) -> str:
        return self.text
