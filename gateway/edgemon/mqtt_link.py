"""How every gateway-side MQTT client (the gateway's session, `edgemon node ...`, `edgemon gateway
retire`) presents itself to the broker: the account from gateway.toml [mqtt] and, with tls = true,
TLS with only the configured CA trusted (no system CAs: a certificate bought elsewhere for the same
name is refused) and optionally the gateway's client certificate (mutual TLS)."""

from __future__ import annotations

import ssl

from .config import GatewayConfig


def tls_context(cfg: GatewayConfig) -> ssl.SSLContext | None:
    if cfg.mqtt_tls_ca is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the host name
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=str(cfg.mqtt_tls_ca))
    if cfg.mqtt_tls_cert is not None:
        ctx.load_cert_chain(str(cfg.mqtt_tls_cert), str(cfg.mqtt_tls_key))
    return ctx


def apply_credentials(client, cfg: GatewayConfig) -> None:
    """Account and TLS on a paho client, before connect()."""
    if cfg.mqtt_user is not None:
        client.username_pw_set(cfg.mqtt_user, cfg.mqtt_password)
    ctx = tls_context(cfg)
    if ctx is not None:
        client.tls_set_context(ctx)
