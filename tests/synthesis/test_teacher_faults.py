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
    TeacherUnreachableError,
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


def test_errors_are_remembered_with_a_retry_policy(tmp_path):
    """A refused request is not asked again on a rerun; a passing failure is, a bounded number of times."""
    with FaultServer([{"status": 400, "body": "bad"}], default={"body": completion("ok")}) as srv:
        t = CachedTeacher(teacher(srv.url), ResponseCache(tmp_path / "c.sqlite"))
        assert isinstance(t.complete([REQ])[0], TeacherError)
        rerun = CachedTeacher(teacher(srv.url), ResponseCache(tmp_path / "c.sqlite"))
        again = rerun.complete([REQ])[0]
        assert isinstance(again, TeacherError) and again.status == 400 and rerun.calls == 0
        assert len(srv.requests) == 1
    with FaultServer([], default={"status": 503, "body": "down"}) as srv:
        for _ in range(3):
            CachedTeacher(teacher(srv.url, max_retries=0), ResponseCache(tmp_path / "d.sqlite"), 2).complete(
                [REQ]
            )
        assert len(srv.requests) == 2  # two runs asked, the third remembered


def test_cache_key_includes_the_server_and_identical_requests_go_once(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    with (
        FaultServer([], default={"body": completion("from A")}) as a,
        FaultServer([], default={"body": completion("from B")}) as b,
    ):
        assert CachedTeacher(teacher(a.url), cache).complete([REQ, REQ])[0].text == "from A"
        assert CachedTeacher(teacher(b.url), cache).complete([REQ])[0].text == "from B"
        assert len(a.requests) == 1 and len(b.requests) == 1


def test_secrets_are_redacted_from_errors(monkeypatch):
    monkeypatch.setenv("LW_TEST_KEY", "sk-verysecret123")
    echo = {
        "status": 500,
        "body": '{"error": "boom", "headers": {"Authorization": "Bearer sk-verysecret123"}}',
    }
    with FaultServer([], default=echo) as srv:
        out = teacher(srv.url, api_key_env="LW_TEST_KEY", max_retries=0).complete([REQ])[0]
    assert isinstance(out, TeacherError) and "sk-verysecret123" not in str(out) and "REDACTED" in str(out)


def test_unreachable_server_raises_instead_of_rejecting():
    with FaultServer([]) as srv:
        url = srv.url
    with pytest.raises(TeacherUnreachableError):
        teacher(url, max_retries=1).complete([REQ])


def test_dry_run_cache_is_read_only(tmp_path):
    path = tmp_path / "never.sqlite"
    store = ResponseCache(path, readonly=True)
    assert store.get("k") is None and len(store) == 0 and not path.exists()
