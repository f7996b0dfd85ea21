"""A dashboard's JSON checked against Grafana's own dashboard model, as grafana-foundation-sdk's Python
types hold it (the schema of the Grafana version the SDK release names, requirements.lock):

the JSON is decoded into the SDK's model classes (Dashboard, Panel, RowPanel, each panel plugin's
Options and FieldConfig, VariableModel, AnnotationQuery, ThresholdsConfig, ValueMap ...) and encoded
back; every key and value of the JSON must come back unchanged. A key the model does not know
(a typo such as `fieldconfig`, an option a panel type does not have) is dropped by the decoding and
so reported, as is a value that changes on the way (e.g. a list where an object belongs). Each panel
type must be one the SDK has a plugin model for.

Not covered by the SDK's types, so not checked here: the queries inside targets (the SDK has no
InfluxDB query type: targets decode as opaque data) and an InfluxQL annotation's target (the SDK
models only the built-in Grafana annotation target). tests/dashboards runs those against InfluxDB.
"""

from __future__ import annotations

import json

EXEMPT = ("annotations.list[*].target",)


def _registered_panel_types() -> set[str]:
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.runtime import Runtime
    plugins.register_default_plugins()
    return set(Runtime().panelcfg_variants) | {"row"}


def round_trip(model: dict) -> dict:
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard
    plugins.register_default_plugins()
    return json.loads(json.dumps(Dashboard.from_json(model), cls=JSONEncoder))


def _generic(path: str) -> str:
    import re
    return re.sub(r"\[\d+\]", "[*]", path)


def _compare(orig, back, path: str, out: list[str]) -> None:
    if _generic(path) in EXEMPT:
        return
    if isinstance(orig, dict):
        if not isinstance(back, dict):
            out.append(f"{path}: the model made {type(back).__name__} of an object")
            return
        for key, value in orig.items():
            here = f"{path}.{key}" if path else key
            if key not in back:
                out.append(f"{here}: not in Grafana's dashboard model (dropped when decoded)")
            else:
                _compare(value, back[key], here, out)
    elif isinstance(orig, list):
        if not isinstance(back, list) or len(back) != len(orig):
            out.append(f"{path}: the list did not come back whole")
            return
        for i, (a, b) in enumerate(zip(orig, back)):
            _compare(a, b, f"{path}[{i}]", out)
    elif orig != back:
        out.append(f"{path}: {orig!r} came back as {back!r}")


def _panels(model: dict):
    for p in model.get("panels") or []:
        yield p
        yield from p.get("panels") or []


def problems(model: dict) -> list[str]:
    """Everything in the dashboard JSON that Grafana's model (the SDK's types) does not take as it is."""
    out: list[str] = []
    known = _registered_panel_types()
    for p in _panels(model):
        if p.get("type") not in known:
            out.append(f"panel {p.get('id')} ({p.get('title')}): type {p.get('type')!r} has no model in the SDK")
    try:
        back = round_trip(model)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return out + [f"the SDK's model cannot decode it: {type(exc).__name__}: {exc}"]
    _compare(model, back, "", out)
    return out
