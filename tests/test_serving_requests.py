"""sequencer/serving/requests.py: reading a body within its limits, and quoting what a request sent."""

import asyncio

import pytest
from starlette.requests import Request

from sequencer.serving import ServingError, read_body
from sequencer.serving import requests as requests_module
from sequencer.serving.requests import shown


def test_a_content_length_of_other_digits_than_ascii_is_not_read_as_a_number():
    body = b'{"text": ["Hello."]}'
    parts = iter([{"type": "http.request", "body": body, "more_body": False}])

    async def receive():
        return next(parts)

    request = Request(
        {"type": "http", "method": "POST", "headers": [(b"content-length", "²".encode("latin-1"))]}, receive
    )
    assert asyncio.run(read_body(request, 1000)) == body  # "²".isdigit(), but int("²") fails


def test_a_body_that_stops_arriving_is_a_408(monkeypatch):
    monkeypatch.setattr(requests_module, "BODY_SECONDS", 0.05)
    parts = iter([{"type": "http.request", "body": b'{"text": ', "more_body": True}])

    async def receive():
        try:
            return next(parts)
        except StopIteration:
            await asyncio.sleep(60)  # the client sends no more

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    with pytest.raises(ServingError) as refused:
        asyncio.run(read_body(request, 1000))
    assert (refused.value.status, refused.value.message) == (
        408,
        "the body did not arrive within 0.05 seconds (9 bytes came)",
    )


def test_a_value_nested_too_deeply_to_quote_is_named_not_quoted():
    nested = []
    for _ in range(100_000):
        nested = [nested]
    assert shown(nested) == "a deeply nested list"
