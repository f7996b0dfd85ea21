"""Development tooling: local server stack, simulated analyzers and modem, firmware build and runner, demo.

Nothing here is imported by the running gateway (tests/gateway/test_rooms.py checks it)."""
