"""The account and rate-limit resources, as the Heroku CLI reads them."""

from __future__ import annotations

from tests.api.conftest import Api


def test_account_is_the_operator(api: Api) -> None:
    """GET /account names the operator with an id and an email."""
    answer = api.client.get("/account")
    assert answer.status_code == 200
    body = answer.json()
    assert body["email"] == "operator@securekey.local"
    assert len(body["id"]) == 36


def test_rate_limits_report_remaining(api: Api) -> None:
    """GET /account/rate-limits answers Heroku's shape with an integer remaining."""
    answer = api.client.get("/account/rate-limits")
    assert answer.status_code == 200
    assert isinstance(answer.json()["remaining"], int)
