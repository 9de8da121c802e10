"""The model judge of the judged benchmarks (LLaVA-Bench in-the-wild, MM-Vet, Ferret-Bench): an interface, two backends.

    judge.ask(messages, temperature=t, max_tokens=n) -> Reply(text, model)

`messages` are chat-completions messages ([{"role": "system" | "user" | "assistant", "content": "..."}]); the
benchmark's scorer (`scorers.judged`) builds them with the benchmark's official prompt and passes the official
temperature and token budget, which the judge's config may override (`max_tokens` > 0, `temperature` >= 0).

Backends:
  OpenAIJudge   any OpenAI-compatible chat-completions endpoint: POST {url}/chat/completions with {"model",
                "messages", "temperature", "max_tokens"}, the reply's choices[0].message.content. Standard library
                only (urllib). The API key is read from the environment variable NAMED by `api_key_env` at every
                request (empty name: no key, for a local server without authentication); it is kept in no attribute,
                and every error, log line and reply text has it masked, so it never reaches a log, an exception,
                the results or the judge's repr. Transport failures (connection refused or reset, a timeout, HTTP
                408 / 409 / 429 / 5xx, a body that is not chat-completions JSON) are retried up to `attempts` times
                in all, waiting backoff_s * 2**k before retry k + 1; other HTTP errors (400, 401, 403, 404, ...) do
                not heal by waiting and fail at once. A judge that stays down raises `JudgeError`, one sentence
                naming the endpoint (no key) and the last error.
  LocalJudge    a callable generate(messages, temperature, max_tokens) -> text; `LocalJudge.from_model(module,
                params, tokenizer)` wraps our own cached generator (`runtime.generate.Generator`) over a converted
                text decoder (e.g. a converted Qwen2 from `mm1_jax.pretrained.load`), the messages written in ChatML;
                `from_checkpoint(path)` loads one. A study can so be judged with no network.

`JUDGE_DEFAULTS` is the config block (config.eval.judge); `build_judge(cfg)` checks it and returns the judge, or None
when no backend is set: the judged benchmarks then report "not scored: no judge" (`NOT_SCORED`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ml_collections

log = logging.getLogger(__name__)

BACKENDS = ("", "openai", "local")
NOT_SCORED = "no judge"  # details["not_scored"] of a judged benchmark run without a judge

JUDGE_DEFAULTS = ml_collections.ConfigDict({
    "backend": "",  # "" (no judge: judged benchmarks are not scored) | "openai" | "local"
    "url": "",  # openai: the API's base URL, e.g. https://api.openai.com/v1 (".../chat/completions" is appended)
    "model": "",  # openai: the model name sent (e.g. gpt-4-0613); local: the name recorded (default: the folder's)
    "api_key_env": "OPENAI_API_KEY",  # the NAME of the environment variable holding the key ("": send no key)
    "max_tokens": 0,  # > 0 overrides each benchmark's official reply budget
    "temperature": -1.0,  # >= 0 overrides each benchmark's official temperature
    "attempts": 5,  # openai: tries per request, in all
    "backoff_s": 1.0,  # openai: the wait before the first retry, doubled each retry
    "timeout_s": 120.0,  # openai: seconds for one request
    "checkpoint": "",  # local: a converted (or Hugging Face) text decoder folder, for mm1_jax.pretrained.load
    "tokenizer": "",  # local: its tokenizer.json ("" -> <checkpoint>/tokenizer.json)
})

_RETRIED_HTTP = frozenset({408, 409, 425, 429})  # and every 5xx


class JudgeError(RuntimeError):
    """The judge gave no reply: one sentence naming the judge (its endpoint, never the key) and the last error."""


@dataclasses.dataclass(frozen=True)
class Reply:
    """A judge's reply: its text ("" when the reply has no content) and the model that answered (as it says)."""

    text: str
    model: str


def prompt_version(name: str, texts: Sequence[str]) -> str:
    """A short id of a benchmark's judge prompt: "<name>-<12 hex digits of the SHA-256 of its texts>"."""
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()
    return f"{name}-{digest[:12]}"


class Judge:
    """The interface: `ask(messages, temperature=, max_tokens=)` -> Reply; `describe()` -> what the results record."""

    backend = ""

    def __init__(self, model: str, *, max_tokens: int = 0, temperature: float = -1.0):
        self.model = str(model)
        self.max_tokens, self.temperature = int(max_tokens), float(temperature)

    def settings(self, temperature: float, max_tokens: int) -> tuple[float, int]:
        """The temperature and reply budget sent: the benchmark's, unless the config overrides them."""
        return (self.temperature if self.temperature >= 0 else float(temperature),
                self.max_tokens if self.max_tokens > 0 else int(max_tokens))

    def ask(self, messages: Sequence[Mapping[str, str]], *, temperature: float, max_tokens: int) -> Reply:
        temperature, max_tokens = self.settings(temperature, max_tokens)
        return self._complete([dict(m) for m in messages], temperature, max_tokens)

    def _complete(self, messages: list[dict], temperature: float, max_tokens: int) -> Reply:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The judge as the results record it (no secret)."""
        out: dict[str, Any] = {"backend": self.backend, "model": self.model}
        if self.max_tokens > 0:
            out["max_tokens_override"] = self.max_tokens
        if self.temperature >= 0:
            out["temperature_override"] = self.temperature
        return out

    def mask(self, text: str) -> str:
        """`text` with any secret of this judge masked (none for a judge without one)."""
        return text


# --------------------------------------------------------------------------------------------------------------------
# An OpenAI-compatible endpoint
# --------------------------------------------------------------------------------------------------------------------
class _Retry(Exception):
    """A transport failure worth another attempt."""


class OpenAIJudge(Judge):
    """A chat-completions endpoint. The key is read from os.environ[api_key_env] at each request, never stored."""

    backend = "openai"

    def __init__(self, url: str, model: str, api_key_env: str = "OPENAI_API_KEY", *, max_tokens: int = 0,
                 temperature: float = -1.0, attempts: int = 5, backoff_s: float = 1.0, timeout_s: float = 120.0,
                 sleep: Callable[[float], None] = time.sleep):
        super().__init__(model, max_tokens=max_tokens, temperature=temperature)
        self.url = str(url).rstrip("/")
        self.api_key_env = str(api_key_env)
        self.attempts, self.backoff_s, self.timeout_s = max(1, int(attempts)), float(backoff_s), float(timeout_s)
        self._sleep = sleep

    @property
    def endpoint(self) -> str:
        return f"{self.url}/chat/completions"

    def __repr__(self) -> str:
        return (f"OpenAIJudge(url={self.url!r}, model={self.model!r}, api_key_env={self.api_key_env!r}, "
                f"attempts={self.attempts}, backoff_s={self.backoff_s}, timeout_s={self.timeout_s})")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "url": self.endpoint}

    def _key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def mask(self, text: str) -> str:
        key = self._key()
        text = str(text)
        return text.replace(key, "[key]") if key else text

    def _complete(self, messages: list[dict], temperature: float, max_tokens: int) -> Reply:
        key = self._key()
        if self.api_key_env and not key:
            raise JudgeError(self.mask(f"judge {self.model!r} at {self.endpoint}: the environment variable "
                                       f"{self.api_key_env!r} (eval.judge.api_key_env) that holds its API key is "
                                       f"not set."))
        body = json.dumps({"model": self.model, "messages": messages, "temperature": temperature,
                           "max_tokens": max_tokens}).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = "Bearer " + key
        last = ""
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                delay = self.backoff_s * 2 ** (attempt - 2)
                log.warning("%s", self.mask(f"judge {self.model!r} at {self.endpoint}: attempt {attempt - 1} of "
                                            f"{self.attempts} failed ({last}); retrying in {delay:.3g} s"))
                self._sleep(delay)
            try:
                return self._post(body, headers)
            except _Retry as e:
                last = self.mask(str(e))
        raise JudgeError(self.mask(f"judge {self.model!r} at {self.endpoint} gave no reply after {self.attempts} "
                                   f"attempt{'s' if self.attempts > 1 else ''}; the last error: {last}."))

    def _post(self, body: bytes, headers: dict[str, str]) -> Reply:
        request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            detail = _error_text(e)
            what = f"HTTP {e.code}{': ' + detail if detail else ''}"
            if e.code in _RETRIED_HTTP or e.code >= 500:
                raise _Retry(what) from None
            raise JudgeError(self.mask(f"judge {self.model!r} at {self.endpoint} refused the request ({what}).")
                             ) from None
        except TimeoutError:  # (socket.timeout is TimeoutError)
            raise _Retry(f"no reply within {self.timeout_s:g} s (timeout_s)") from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, TimeoutError):
                raise _Retry(f"no reply within {self.timeout_s:g} s (timeout_s)") from None
            raise _Retry(f"cannot connect ({reason})") from None
        except (http.client.HTTPException, ConnectionError, OSError) as e:
            raise _Retry(f"the connection failed ({type(e).__name__}: {e})") from None
        return self._parse(raw)

    def _parse(self, raw: bytes) -> Reply:
        try:
            data = json.loads(raw.decode("utf-8"))
            message = data["choices"][0]["message"]
            content = message.get("content")
            if content is not None and not isinstance(content, str):
                raise TypeError("content is not text")
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as e:
            excerpt = raw[:120].decode("utf-8", "replace")
            raise _Retry(f"the reply is not chat-completions JSON ({type(e).__name__}; it begins {excerpt!r})"
                         ) from None
        served = data.get("model") if isinstance(data.get("model"), str) else self.model
        return Reply(self.mask(content or ""), self.mask(served))


def _error_text(error: urllib.error.HTTPError) -> str:
    """An HTTP error's message: the API's error.message, else the start of its body."""
    try:
        raw = error.read()[:2000].decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):  # a body that cannot be read says nothing more
        return ""
    try:
        message = json.loads(raw)["error"]["message"]
        if isinstance(message, str):
            return message[:200]
    except (ValueError, KeyError, TypeError):
        pass
    return " ".join(raw.split())[:200]


# --------------------------------------------------------------------------------------------------------------------
# A local judge: our own generator over a converted text model
# --------------------------------------------------------------------------------------------------------------------
QWEN2_SYSTEM = "You are a helpful assistant."  # Qwen2's chat template, when the messages have no system message


def chatml(messages: Sequence[Mapping[str, str]], default_system: str | None = QWEN2_SYSTEM) -> str:
    """Messages as a ChatML prompt ending where the assistant's reply starts (Qwen2's chat template, which adds
    `default_system` when the first message is not a system message)."""
    parts = []
    if default_system is not None and (not messages or messages[0]["role"] != "system"):
        parts.append(f"<|im_start|>system\n{default_system}<|im_end|>\n")
    parts += [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


@dataclasses.dataclass(frozen=True)
class _TextDecoder:
    """A text decoder under the generator's MM1 slot layout: the prompt has no image slots, and the image arguments
    the layout passes (None / all -1) are dropped before the decoder is applied."""

    decoder: Any

    def apply(self, variables: Any, tokens: Any, images: Any = None, image_token_index: Any = None, **kwargs: Any):
        del images, image_token_index
        return self.decoder.apply(variables, tokens, **kwargs)


class LocalJudge(Judge):
    """A judge that is a function generate(messages, temperature, max_tokens) -> reply text."""

    backend = "local"

    def __init__(self, generate: Callable[[list[dict], float, int], str], *, model: str = "local",
                 max_tokens: int = 0, temperature: float = -1.0):
        super().__init__(model, max_tokens=max_tokens, temperature=temperature)
        self._generate = generate

    def __repr__(self) -> str:
        return f"LocalJudge(model={self.model!r})"

    def _complete(self, messages: list[dict], temperature: float, max_tokens: int) -> Reply:
        try:
            text = self._generate(messages, temperature, max_tokens)
        except Exception as e:  # pylint: disable=broad-except  # one sentence for the task, whatever failed
            raise JudgeError(f"local judge {self.model!r} failed: {type(e).__name__}: {e}") from e
        return Reply("" if text is None else str(text), self.model)

    @classmethod
    def from_model(cls, module: Any, params: Any, tokenizer: Any, *, model: str = "local", seed: int = 0,
                   default_system: str | None = QWEN2_SYSTEM, max_tokens: int = 0, temperature: float = -1.0
                   ) -> LocalJudge:
        """Our cached generator over a text decoder `module` with `params` and `tokenizer` (a data.tokenizer
        Tokenizer with ChatML's <|im_start|> / <|im_end|>): the messages in ChatML, the reply up to <|im_end|> or
        <eos>, greedy at temperature 0, else sampled (seed `seed`)."""
        import numpy as np  # pylint: disable=import-outside-toplevel  # (jax only for a local judge)

        from mm1_jax.runtime import generate as gen  # pylint: disable=import-outside-toplevel

        generator = gen.Generator(_TextDecoder(module), pad_id=tokenizer.pad_id, tokens_per_image=1, image_id=-1,
                                  batch_size=1)
        end = tokenizer.encode("<|im_end|>")
        stops = tuple(sorted({int(tokenizer.eos_id), *(end if len(end) == 1 else [])}))

        def generate(messages: list[dict], temperature: float, max_tokens: int) -> str:
            ids = np.asarray(tokenizer.encode(chatml(messages, default_system)), np.int32)
            request = gen.Request(ids, np.zeros((0, 1, 1, 3), np.uint8))
            sampling = gen.Sampling(max_new_tokens=int(max_tokens), temperature=float(temperature), stop_ids=stops,
                                    seed=seed)
            (tokens, _), = generator(params, [request], sampling)
            return tokenizer.decode(tokens, mark_images=False).strip()

        return cls(generate, model=model, max_tokens=max_tokens, temperature=temperature)

    @classmethod
    def from_checkpoint(cls, path: str, tokenizer: str = "", *, model: str = "", **kwargs: Any) -> LocalJudge:
        """A converted (or Hugging Face) text decoder folder, loaded by `mm1_jax.pretrained.load`, with its
        tokenizer.json (or `tokenizer`)."""
        from mm1_jax import pretrained  # pylint: disable=import-outside-toplevel
        from mm1_jax.data.tokenizer import load_tokenizer  # pylint: disable=import-outside-toplevel

        loaded = pretrained.load(path)
        if getattr(loaded, "kind", None) != "decoder":
            raise ValueError(f"eval.judge.checkpoint={path!r} is not a text decoder checkpoint (a local judge needs "
                             f"one, e.g. a converted Qwen2).")
        tok = load_tokenizer(tokenizer or os.path.join(path, "tokenizer.json"))
        name = model or os.path.basename(os.path.normpath(path))
        return cls.from_model(loaded.module, loaded.params, tok, model=name, **kwargs)


# --------------------------------------------------------------------------------------------------------------------
# The config
# --------------------------------------------------------------------------------------------------------------------
def _field(cfg: Any, name: str) -> Any:
    if isinstance(cfg, Mapping):
        return cfg.get(name, JUDGE_DEFAULTS[name])
    return getattr(cfg, name, JUDGE_DEFAULTS[name]) if cfg is not None else JUDGE_DEFAULTS[name]


def _number(cfg: Any, name: str, kind: type, low: float, strict: bool = False) -> Any:
    value = _field(cfg, name)
    try:
        if isinstance(value, bool):
            raise TypeError
        number = kind(value)
        if kind is int and number != value:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"eval.judge.{name}={value!r} is not {'an integer' if kind is int else 'a number'}."
                         ) from None
    if number < low or (strict and number == low):
        raise ValueError(f"eval.judge.{name}={value!r} must be {'above' if strict else 'at least'} {low:g}.")
    return number


def check_judge(cfg: Any) -> None:
    """build_judge's checks of config.eval.judge without building the judge (a local one is not loaded)."""
    build_judge(cfg, load=False)


def build_judge(cfg: Any, load: bool = True) -> Judge | None:
    """The judge config.eval.judge describes (a ConfigDict or dict with JUDGE_DEFAULTS' fields), or None without a
    backend. A wrong field raises one ValueError sentence naming the field and its value; a missing API key names
    the environment variable, never a value."""
    backend = _field(cfg, "backend")
    backend = "" if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(f"eval.judge.backend={backend!r} is not one of {', '.join(repr(b) for b in BACKENDS)}.")
    if not backend:
        return None
    unknown = sorted(set(cfg) - set(JUDGE_DEFAULTS)) if isinstance(cfg, Mapping) else \
        sorted(set(cfg.keys()) - set(JUDGE_DEFAULTS)) if isinstance(cfg, ml_collections.ConfigDict) else []
    if unknown:
        raise ValueError(f"eval.judge has unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"known: {', '.join(JUDGE_DEFAULTS)}.")
    temperature = _field(cfg, "temperature")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or math.isnan(temperature):
        raise ValueError(f"eval.judge.temperature={temperature!r} is not a number (< 0: each benchmark's own).")
    common = {"max_tokens": _number(cfg, "max_tokens", int, 0), "temperature": float(temperature)}
    if backend == "local":
        checkpoint = str(_field(cfg, "checkpoint") or "")
        if not checkpoint:
            raise ValueError("eval.judge.backend='local' needs eval.judge.checkpoint, a converted text model folder; "
                             "it is unset.")
        if not os.path.isdir(checkpoint):
            raise ValueError(f"eval.judge.checkpoint={checkpoint!r} is not an existing folder.")
        tokenizer = str(_field(cfg, "tokenizer") or "")
        if not os.path.isfile(tokenizer or os.path.join(checkpoint, "tokenizer.json")):
            raise ValueError(f"eval.judge.tokenizer={tokenizer!r}: no tokenizer file "
                             f"{tokenizer or os.path.join(checkpoint, 'tokenizer.json')!r}.")
        if not load:
            return None
        return LocalJudge.from_checkpoint(checkpoint, tokenizer, model=str(_field(cfg, "model") or ""), **common)
    url = str(_field(cfg, "url") or "")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"eval.judge.url={url!r} is not an http:// or https:// URL (the endpoint's base URL, e.g. "
                         f"https://api.openai.com/v1).")
    model = str(_field(cfg, "model") or "")
    if not model:
        raise ValueError("eval.judge.model is unset; the endpoint needs the judge model's name (e.g. 'gpt-4-0613').")
    env = _field(cfg, "api_key_env")
    env = "" if env is None else str(env)
    if env and not os.environ.get(env):
        raise ValueError(f"eval.judge.api_key_env={env!r} names an environment variable that is not set; set it to "
                         f"the API key, or set api_key_env='' for an endpoint without a key.")
    return OpenAIJudge(url, model, env, attempts=_number(cfg, "attempts", int, 1),
                       backoff_s=_number(cfg, "backoff_s", float, 0), timeout_s=_number(cfg, "timeout_s", float, 0,
                                                                                        strict=True), **common)
