"""The HTTP API: a Heroku Platform API v3 subset plus rotation, tokens, webhooks and live watch."""

from securekey.api.app import create_api

__all__ = ["create_api"]
