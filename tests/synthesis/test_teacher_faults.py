"""The OpenAI-compatible client against a loopback server misbehaving on purpose."""

from __future__ import annotations

import time

import pytest

from pipeline.synthesis.cache import CachedTeacher, ResponseCache
from pipeline.synthesis.teachers import (
    ChatRequest,
    ChatResponse,
    OpenAICompatTeacher,
    TeacherAuthError,
    TeacherError,
)
from tests.synthesis.fault_server import FaultServer, completion

REQ = ChatRequest((("user", "hello"),), max_tokens=16)


def teacher(url: str, **kw) -> OpenAICompatTeacher:
    kw = {"timeout": 1.0, "max_retries": 3, "backoff": 0.01, **kw}
    return OpenAICompatTeacher(url, "test-model", **kw)


def test_timeout_is_retried_then_succeeds():
    with FaultServer([{"sleep": 1.5, "body": completion("late")}, {"body": completion("ok")}]) as srv:
        out = teacher(srv.url).complete([REQ])[0]
    assert isinstance(out, ChatResponse) and out.text == "ok"
    assert len(srv.requests) == 2


def test_429_honours_retry_after():
    with FaultServer(
        [{"status": 429, "body": "slow down", "headers": {"Retry-After": "1"}}, {"body": completion("ok")}]
    ) as srv:
        t0 = time.perf_counter()
        out = teacher(srv.url).complete([REQ])[0]
        waited = time.perf_counter() - t0
    assert isinstance(out, ChatResponse) and waited >= 0.9


def test_500_retried_and_400_not():
    with FaultServer([{"status": 500, "body": "oops"}, {"body": completion("ok")}]) as srv:
        assert teacher(srv.url).complete([REQ])[0].text == "ok"
    with FaultServer([{"status": 400, "body": "bad request"}], default=completion("never")) as srv:
        out = teacher(srv.url).complete([REQ])[0]
        assert isinstance(out, TeacherError) and not out.transient and out.status == 400
        assert len(srv.requests) == 1


def test_persistent_failure_returns_error_not_fake_text():
    with FaultServer([], default={"status": 503, "body": "down"}) as srv:
        out = teacher(srv.url, max_retries=2).complete([REQ])[0]
    assert isinstance(out, TeacherError) and out.transient
    assert len(srv.requests) == 3


def test_malformed_json_body_is_retried():
    with FaultServer([{"body": "{not json"}, {"body": {"choices": []}}, {"body": completion("ok")}]) as srv:
        out = teacher(srv.url).complete([REQ])[0]
    assert out.text == "ok" and len(srv.requests) == 3


def test_no_json_mode_server_falls_back(monkeypatch):
    with FaultServer(
        [{"status": 400, "body": "unknown field response_format"}, {"body": completion("ok")}]
    ) as srv:
        t = teacher(srv.url)
        out = t.complete([ChatRequest((("user", "x"),), json_mode=True)])[0]
    assert out.text == "ok" and not t.json_supported
    assert "response_format" in srv.requests[0]["body"] and "response_format" not in srv.requests[1]["body"]


def test_auth_failure_stops_the_run_and_key_comes_from_env(monkeypatch):
    monkeypatch.setenv("LW_TEST_KEY", "sk-secret")
    with FaultServer([{"status": 401, "body": "no"}]) as srv:
        with pytest.raises(TeacherAuthError) as err:
            teacher(srv.url, api_key_env="LW_TEST_KEY").complete([REQ])
    assert srv.requests[0]["auth"] == "Bearer sk-secret"
    assert "sk-secret" not in str(err.value)


def test_cache_pays_each_request_once(tmp_path):
    with FaultServer([], default={"body": completion("cached answer")}) as srv:
        cache = ResponseCache(tmp_path / "c.sqlite")
        first = CachedTeacher(teacher(srv.url), cache)
        reqs = [ChatRequest((("user", f"q{i}"),)) for i in range(3)]
        first.complete(reqs)
        again = CachedTeacher(teacher(srv.url), ResponseCache(tmp_path / "c.sqlite"))
        out = again.complete(reqs)
    assert len(srv.requests) == 3
    assert again.calls == 0 and again.hits == 3 and all(r.cached for r in out)
    assert len(ResponseCache(tmp_path / "c.sqlite")) == 3


def test_errors_are_not_cached(tmp_path):
    with FaultServer([{"status": 400, "body": "bad"}], default={"body": completion("ok")}) as srv:
        t = CachedTeacher(teacher(srv.url), ResponseCache(tmp_path / "c.sqlite"))
        assert isinstance(t.complete([REQ])[0], TeacherError)
        assert t.complete([REQ])[0].text == "ok"
