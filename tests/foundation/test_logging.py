"""Structured logs: one JSON object per line, with the request id of the request being served."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest

from api.logging import JsonFormatter, request_id_var


def _record(msg: str, *args: object, exc_info: object = None, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("api.test", logging.WARNING, __file__, 1, msg, args, exc_info)  # type: ignore[arg-type]
    record.__dict__.update(extra)
    return record


def test_record_is_one_line_of_json_with_standard_fields() -> None:
    line = JsonFormatter().format(_record("order %s rejected", "o-1"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "order o-1 rejected"
    assert (entry["level"], entry["logger"]) == ("warning", "api.test")
    assert entry["ts"].endswith("Z") and len(entry["ts"]) == len("2025-01-01T00:00:00.000000Z")


def test_extra_fields_are_included_and_odd_values_stringified() -> None:
    from decimal import Decimal

    entry = json.loads(JsonFormatter().format(_record("fill", symbol="ACME", price=Decimal("10.05"))))
    assert (entry["symbol"], entry["price"]) == ("ACME", "10.05")


def test_request_id_in_context_is_logged() -> None:
    token = request_id_var.set("req-7")
    try:
        entry = json.loads(JsonFormatter().format(_record("hello")))
    finally:
        request_id_var.reset(token)
    assert entry["request_id"] == "req-7"


def test_exception_is_logged_as_one_field() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        entry = json.loads(JsonFormatter().format(_record("failed", exc_info=sys.exc_info())))
    assert entry["exc"].startswith("Traceback") and "ValueError: boom" in entry["exc"]


async def test_access_log_line_carries_method_path_status_and_request_id(
    api_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="api.access"):
        await api_client.get("/v1/missing", headers={"X-Request-ID": "abc"})
    (record,) = [r for r in caplog.records if r.name == "api.access"]
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/v1/missing", 404)
    assert entry["duration_ms"] >= 0


def test_configure_logging_routes_everything_through_json(monkeypatch: pytest.MonkeyPatch) -> None:
    from api.logging import configure_logging

    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        configure_logging("info", stream=stream)
        logging.getLogger("uvicorn.error").info("Started server process")
        logging.getLogger("ledger.test").debug("not shown at info")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["msg"] for line in lines] == ["Started server process"]
