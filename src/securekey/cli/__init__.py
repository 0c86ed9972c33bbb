"""The ``securekey`` command line: a client of the HTTP API with the Heroku CLI's words."""

from securekey.cli.entry import build_app, main

__all__ = ["build_app", "main"]
