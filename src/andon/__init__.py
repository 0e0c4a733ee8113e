"""Andon: production-support orchestration for manufacturers, sold through partners."""

__version__ = "0.1.0"
