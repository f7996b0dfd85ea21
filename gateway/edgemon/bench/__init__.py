"""Benchmarks (`make bench`): gateway throughput, alarm latency, firmware heap and speed.

Nothing here is imported by the running gateway (tests/gateway/test_rooms.py checks it)."""
