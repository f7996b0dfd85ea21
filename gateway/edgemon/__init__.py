"""edgemon: gateway, analyzer simulator and local stack for outfall online monitoring."""

__version__ = "0.1.0"
