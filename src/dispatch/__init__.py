"""Field repair dispatch and SLA service."""

__version__ = "0.1.0"
