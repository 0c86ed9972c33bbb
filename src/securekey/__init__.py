"""securekey: self-hosted automatic key rotation for services."""

__version__ = "0.1.0"

__all__ = ["__version__"]
