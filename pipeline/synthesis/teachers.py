"""Teacher LLM backends behind one small protocol.

* :class:`OpenAICompatTeacher`: any OpenAI-compatible ``/v1/chat/completions`` server (vLLM,
  llama.cpp, Ollama, ``transformers serve``, hosted APIs). API key only from an environment variable.
* :class:`LocalTransformersTeacher`: batched generation with a local transformers model
  (default: the packaged SmolLM2-135M-Instruct).

Both return a :class:`ChatResponse` or a :class:`TeacherError` per request, never a fake string.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from data_contracts import content_hash
from pipeline.errors import PipelineError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request. ``sample`` distinguishes repeated samples of one prompt."""

    messages: tuple[tuple[str, str], ...]  # (role, content)
    max_tokens: int = 384
    temperature: float = 0.0
    seed: int = 0
    json_mode: bool = True
    prefill: str = ""  # text the assistant turn starts with (local backends; a hint for servers)
    sample: int = 0
    frequency_penalty: float = 0.0  # OpenAI semantics; local generation uses repetition_penalty = 1 + this

    def key(self, backend: str, model: str, server: str = "") -> str:
        """Content address of this request for ``backend``/``model`` at ``server`` (the cache key).

        The server is part of the key: two servers serving one model name are two teachers.
        """
        return content_hash(
            backend,
            model,
            server,
            self.messages,
            self.max_tokens,
            self.temperature,
            self.seed,
            self.json_mode,
            self.prefill,
            self.sample,
            self.frequency_penalty,
            length=32,
        )


@dataclass(frozen=True)
class ChatResponse:
    """A completion and its accounting."""

    text: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


class TeacherError(PipelineError):
    """A request that failed after retries (``transient``) or was refused by the server."""

    def __init__(self, message: str, status: int | None = None, transient: bool = False):
        super().__init__(message)
        self.status, self.transient = status, transient


class TeacherAuthError(TeacherError):
    """Credentials were refused: stop the run instead of rejecting every record."""


class TeacherUnreachableError(TeacherError):
    """The server could not be reached after every retry: the batch fails (it is not a reject).

    Raised rather than returned so an outage never turns into cached per-record rejects; a rerun
    once the server is back resumes where the run stopped.
    """


_SECRET = re.compile(
    r"(?i)(authorization\s*[:=]\s*\"?)(?:bearer\s+)?[^\s\",}]+|\bbearer\s+[A-Za-z0-9._~+/=-]+|\bsk-[A-Za-z0-9_-]{6,}"
)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with API keys and Authorization header values replaced by ``[REDACTED]``.

    Servers echo request headers in error bodies; nothing derived from a reply is stored or
    logged without passing through here.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[REDACTED]")
    return _SECRET.sub(lambda m: (m.group(1) or "") + "[REDACTED]", text)


class Teacher(Protocol):
    """A teacher answers a batch of requests, one result per request, in order."""

    backend: str
    model: str
    # Optional: ``server`` (part of the cache key), ``concurrency`` (requests worth keeping in
    # flight at once) and ``max_batch`` (requests worth sending in one ``complete`` call).

    def complete(self, requests: Sequence[ChatRequest]) -> list[ChatResponse | TeacherError]:
        """Complete every request; failures come back as :class:`TeacherError` values."""
        ...


class OpenAICompatTeacher:
    """Client for OpenAI-compatible chat completions with bounded retries and concurrency.

    Args:
        base_url: server root including ``/v1`` (e.g. ``http://127.0.0.1:8000/v1``).
        model: model name the server expects.
        api_key_env: environment variable holding the API key (never logged or stored).
        timeout: seconds per HTTP request (connect, read and write).
        max_retries: retries of transient failures (timeouts, connection errors, 429, 5xx).
        concurrency: requests in flight at once.

    """

    backend = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_retries: int = 4,
        concurrency: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
    ):
        import httpx

        self.base_url = self.server = base_url.rstrip("/")
        self.model = model
        self.max_retries, self.concurrency = max_retries, concurrency
        self.max_batch = 1  # one request per call: the caller keeps ``concurrency`` calls in flight
        self.backoff, self.max_backoff = backoff, max_backoff
        headers = {"Content-Type": "application/json"}
        key = self._key = os.environ.get(api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout))
        self.json_supported = True

    def complete(self, requests: Sequence[ChatRequest]) -> list[ChatResponse | TeacherError]:
        """Complete requests concurrently (at most ``concurrency`` in flight)."""
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._one, requests))

    def _payload(self, req: ChatRequest) -> dict:
        body = {
            "model": self.model,
            "messages": [{"role": r, "content": c} for r, c in req.messages],
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "seed": req.seed,
        }
        if req.frequency_penalty:
            body["frequency_penalty"] = req.frequency_penalty
        if req.json_mode and self.json_supported:
            body["response_format"] = {"type": "json_object"}
        return body

    def _one(self, req: ChatRequest) -> ChatResponse | TeacherError:
        import httpx

        last: TeacherError | None = None
        for attempt in range(self.max_retries + 1):
            delay = None
            try:
                resp = self._client.post("/chat/completions", json=self._payload(req))
            except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
                last = TeacherUnreachableError(f"cannot reach {self.base_url}: {exc}", transient=True)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = TeacherError(f"{type(exc).__name__}: {exc}", transient=True)
            else:
                if resp.status_code == 200:
                    parsed = _parse_completion(resp, self._key)
                    if not isinstance(parsed, TeacherError):
                        return parsed
                    last = parsed
                elif resp.status_code in (401, 403):
                    raise TeacherAuthError(
                        f"{self.base_url} refused the credentials (HTTP {resp.status_code}); set the API key "
                        "environment variable (default OPENAI_API_KEY)",
                        status=resp.status_code,
                    )
                elif resp.status_code == 400 and "response_format" in resp.text and self.json_supported:
                    self.json_supported = False  # server has no JSON mode: fall back to prompting
                    continue
                else:
                    transient = resp.status_code == 429 or resp.status_code >= 500
                    last = TeacherError(
                        f"HTTP {resp.status_code}: {redact(resp.text[:300], self._key)[:200]}",
                        resp.status_code,
                        transient,
                    )
                    delay = _retry_after(resp)
            if not last.transient or attempt == self.max_retries:
                break
            wait = delay if delay is not None else min(self.max_backoff, self.backoff * 2**attempt)
            log.debug("teacher retry %d after %.2fs: %s", attempt + 1, wait, last)
            time.sleep(wait * (1 + 0.25 * random.random()))
        assert last is not None
        if isinstance(last, TeacherUnreachableError):
            raise last
        return last


def _retry_after(resp) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return min(60.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _parse_completion(resp, key: str | None = None) -> ChatResponse | TeacherError:
    """A 200 response that is not a well-formed completion is a transient failure, not an answer."""
    try:
        data = resp.json()
        choice = data["choices"][0]
        text = choice["message"]["content"]
        if not isinstance(text, str):
            raise TypeError("content is not a string")
        usage = data.get("usage") or {}
        return ChatResponse(
            text=text,
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        body = redact(resp.text[:300], key)[:200]
        return TeacherError(f"malformed completion body: {exc}: {body}", 200, transient=True)


class LocalTransformersTeacher:
    """Batched generation with a local transformers causal LM (safetensors only).

    Args:
        model: a model folder or hub ID; default: the packaged SmolLM2-135M-Instruct.
        batch_size: prompts generated together (left padding).
        device: ``cpu``/``cuda``; default: CUDA when available.

    """

    backend = "local"

    def __init__(
        self,
        model: str | None = None,
        *,
        batch_size: int = 8,
        device: str | None = None,
        trust_remote_code: bool = False,
    ):
        from pipeline import assets

        self.path = assets.resolve_model(model)
        self.server = str(self.path)
        self.model = str(model or assets.SMOLLM2)
        self.batch_size = self.max_batch = batch_size
        self.concurrency = 1  # one generate() at a time: it uses every core
        self.device = device
        self.trust_remote_code = trust_remote_code
        self._lm = None
        self._tok = None

    def _load(self):
        if self._lm is None:
            import torch

            self.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            self._lm, self._tok = _shared_model(self.path, self.device, self.trust_remote_code)
        return self._lm, self._tok

    def complete(self, requests: Sequence[ChatRequest]) -> list[ChatResponse | TeacherError]:
        """Generate for every request, in batches (one batch at a time per process: it uses every core)."""
        out: list[ChatResponse | TeacherError] = []
        for i in range(0, len(requests), self.batch_size):
            with _GENERATE_LOCK:
                out.extend(self._batch(list(requests[i : i + self.batch_size])))
        return out

    def _batch(self, reqs: list[ChatRequest]) -> list[ChatResponse | TeacherError]:
        import torch

        lm, tok = self._load()
        prompts = [
            tok.apply_chat_template(
                [{"role": r, "content": c} for r, c in q.messages], tokenize=False, add_generation_prompt=True
            )
            + q.prefill
            for q in reqs
        ]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        max_new = max(q.max_tokens for q in reqs)
        sample = any(q.temperature > 0 for q in reqs)
        torch.manual_seed(reqs[0].seed)
        # Stop each row once it holds one complete JSON object: small models keep talking otherwise.
        stops = (
            [_JsonComplete(tok, enc["input_ids"].shape[1], [q.prefill for q in reqs])]
            if all(q.json_mode for q in reqs)
            else None
        )
        with torch.inference_mode():
            gen = lm.generate(
                **enc,
                max_new_tokens=max_new,
                do_sample=sample,
                temperature=max(q.temperature for q in reqs) if sample else None,
                top_p=None,
                top_k=None,
                pad_token_id=tok.pad_token_id,
                repetition_penalty=1.0 + max(q.frequency_penalty for q in reqs),
                stopping_criteria=stops,
            )
        new = gen[:, enc["input_ids"].shape[1] :]
        results: list[ChatResponse | TeacherError] = []
        for q, row, prompt_ids in zip(reqs, new, enc["attention_mask"], strict=True):
            ids = row.tolist()
            stop = tok.eos_token_id
            ids = ids[: ids.index(stop)] if stop in ids else ids
            while ids and ids[-1] == tok.pad_token_id:
                ids.pop()
            text = q.prefill + tok.decode(ids[: q.max_tokens], skip_special_tokens=True)
            finished = len(ids) < q.max_tokens or (q.json_mode and _json_end(text) is not None)
            if q.json_mode and _json_end(text) is not None:
                text = text[: _json_end(text)]
            results.append(
                ChatResponse(
                    text=text,
                    finish_reason="stop" if finished else "length",
                    prompt_tokens=int(prompt_ids.sum()),
                    completion_tokens=len(ids),
                )
            )
        return results


_LOAD_LOCK = threading.Lock()
_GENERATE_LOCK = threading.Lock()
_MODELS: dict[tuple[str, str, bool], tuple] = {}


def _shared_model(path: str, device: str, trust_remote_code: bool):
    """One loaded copy per (model, device) and process.

    Loading is serialised: ``from_pretrained`` is not thread-safe (concurrent loads in one process can
    leave meta tensors and untied heads).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    key = (path, device, trust_remote_code)
    from pipeline.assets import MODEL_LOAD_LOCK

    with _LOAD_LOCK, MODEL_LOAD_LOCK:
        if key not in _MODELS:
            tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            dtype = torch.bfloat16 if device == "cuda" else torch.float32
            lm = AutoModelForCausalLM.from_pretrained(
                path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code
            )
            _MODELS[key] = (lm.to(device).eval(), tok)
        return _MODELS[key]


def _json_end(text: str) -> int | None:
    """Index just past the first complete top-level JSON object in ``text`` (string-aware)."""
    depth, in_str, esc = 0, False, False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


class _JsonComplete:
    """Stopping criterion: a row is done once its reply holds one complete JSON object."""

    def __init__(self, tok, prompt_len: int, prefills: list[str]) -> None:
        self.tok, self.prompt_len, self.prefills = tok, prompt_len, prefills

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = [
            _json_end(pre + self.tok.decode(row[self.prompt_len :], skip_special_tokens=True)) is not None
            for pre, row in zip(self.prefills, input_ids, strict=True)
        ]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
