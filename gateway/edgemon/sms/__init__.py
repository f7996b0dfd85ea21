"""SMS to enforcement staff through a GSM/4G modem: PDU encoding (pdu.py), the AT-command driver
(modem.py), the persistent outbox and its sender thread, and a pty modem simulator for tests."""
