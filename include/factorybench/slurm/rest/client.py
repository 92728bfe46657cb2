"""HTTP to slurmrestd: one reused session, auth headers, retries, errors[] and warnings[].

Failures are told apart by HTTP status and SLURM error numbers, never by text:
- no answer / 502-504 / a 5xx without SLURM errors → retried, then TransientSchedulerError;
- 401/403/511 or SLURM_PROTOCOL_AUTHENTICATION_ERROR → one token refresh and retry, then
  AuthError (22.05 reports a refused token only as SLURM_ERROR, -1: that also earns the
  one refresh when the token we sent has expired or is no JWT at all);
- anything else comes back as a `Reply` whose `errors` the caller judges (`raise_errors`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from factorybench.errors import AuthError, SchedulerError, TransientSchedulerError
from factorybench.slurm.rest.tokens import Secret, TokenProvider, jwt_expiry, scrub

log = logging.getLogger("factorybench.slurm.rest")

# slurm_errno.h numbers (and errno values slurmrestd passes through).
SLURM_ERROR = -1  # "Unspecified error"
SLURM_COMMUNICATIONS_ERRORS = frozenset({1001, 1002, 1003, 1004})  # connect/send/receive/shutdown
SLURM_PROTOCOL_AUTHENTICATION_ERROR = 1007
ESLURM_INVALID_JOB_ID = 2017
ESLURM_ALREADY_DONE = 2021
ESLURM_AUTH_ERRORS = frozenset(range(6000, 6008))  # ESLURM_AUTH_CRED_INVALID ... : token rejected
_ERRNO_TRANSIENT = frozenset({104, 110, 111, 112, 113})  # ECONNRESET, ETIMEDOUT, ECONNREFUSED, ...
TRANSIENT_ERRORS = SLURM_COMMUNICATIONS_ERRORS | _ERRNO_TRANSIENT
AUTH_ERRORS = ESLURM_AUTH_ERRORS | {SLURM_PROTOCOL_AUTHENTICATION_ERROR}


@dataclass(frozen=True)
class SlurmMessage:
    """One entry of a response's errors[] or warnings[]."""

    text: str
    number: int | None = None
    source: str | None = None

    def __str__(self) -> str:
        where = f" [{self.source}]" if self.source else ""
        num = f" (error {self.number})" if self.number else ""
        return f"{self.text}{num}{where}"


class SlurmRestError(SchedulerError):
    """slurmrestd answered, and refused: carries the HTTP status and SLURM's errors[]."""

    def __init__(self, what: str, status: int | None, errors: tuple[SlurmMessage, ...] = ()):
        self.status = status
        self.errors = errors
        detail = "; ".join(str(e) for e in errors) or f"HTTP {status} with no SLURM error"
        super().__init__(scrub(f"{what}: {detail}"))

    @property
    def numbers(self) -> frozenset[int]:
        return frozenset(e.number for e in self.errors if e.number)


def messages(doc: Any, key: str) -> tuple[SlurmMessage, ...]:
    """errors[]/warnings[] in any version's shape.

    The number is `error_number`, except in 22.05's submit answers (`error_code`) and
    v0.0.37's published spec (`errno`).
    """
    items = doc.get(key) if isinstance(doc, dict) else None
    out = []
    for item in items or ():
        if not isinstance(item, dict):
            out.append(SlurmMessage(scrub(str(item))))
            continue
        number = next((item[k] for k in ("error_number", "error_code", "errno") if k in item), None)
        text = item.get("error") or item.get("description") or item.get("warning") or ""
        desc = item.get("description")
        if desc and desc != text:
            text = f"{text}: {desc}" if text else desc
        out.append(SlurmMessage(scrub(str(text)), number if isinstance(number, int) and number else None,
                                item.get("source") or None))
    return tuple(out)


@dataclass(frozen=True)
class Reply:
    status: int
    doc: dict = field(default_factory=dict)
    errors: tuple[SlurmMessage, ...] = ()
    warnings: tuple[SlurmMessage, ...] = ()

    @property
    def numbers(self) -> frozenset[int]:
        return frozenset(e.number for e in self.errors if e.number)

    def raise_errors(self, what: str) -> None:
        """Raise SlurmRestError when SLURM reported an error or the status is not 2xx."""
        if self.errors or not 200 <= self.status < 300:
            raise SlurmRestError(what, self.status, self.errors)


class RestClient:
    """The HTTP layer of the REST transport; knows nothing of jobs or versions."""

    def __init__(self, url: str, user: str, tokens: TokenProvider, *, timeout_s: float = 30.0,
                 retries: int = 4, backoff_s: float = 0.5, backoff_cap_s: float = 10.0):
        self.url = url.rstrip("/")
        self.user = user
        self.tokens = tokens
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_cap_s = backoff_cap_s
        self._session: aiohttp.ClientSession | None = None  # made in the running loop, then reused

    def __repr__(self) -> str:
        return f"RestClient(url={self.url!r}, user={self.user!r})"

    def _delay(self, attempt: int) -> float:
        """Capped exponential backoff with full jitter, so many pollers do not retry in step."""
        return random.uniform(0, min(self.backoff_cap_s, self.backoff_s * 2 ** attempt))

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def call(self, method: str, path: str, body: dict | None = None,
                   idempotent: bool = True) -> Reply:
        """Send one request, retrying what is safe to retry.

        `idempotent=False` (job submission) retries only when no connection was made,
        so a slow answer never turns into two jobs.
        """
        refreshed = False
        attempt = 0
        while True:
            token = await self.tokens.token()
            try:
                reply = await self._send(method, path, body, token.reveal())
            except aiohttp.ClientConnectorError as exc:
                problem = f"cannot connect to {self.url}: {exc.os_error or exc}"
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {str(exc)[:200]}" if str(exc) else type(exc).__name__
                if not idempotent:
                    raise TransientSchedulerError(scrub(f"{method} {path}: {problem} "
                                                        "(not retried: the request may have been applied)")) from None
            else:
                refused = reply.status in (401, 403, 511) or bool(reply.numbers & AUTH_ERRORS)
                if refused or (not refreshed and reply.numbers == {SLURM_ERROR} and _expired(token)):
                    if refreshed:
                        raise AuthError(scrub(f"{method} {path}: slurmrestd refused the token for user "
                                              f"{self.user!r} even after a refresh (HTTP {reply.status}"
                                              f"{', ' + '; '.join(map(str, reply.errors)) if reply.errors else ''})"))
                    log.info("slurmrestd refused the token (HTTP %s); refreshing it once", reply.status)
                    await self.tokens.refresh(token)
                    refreshed = True
                    continue
                if not _transient(reply):
                    for w in reply.warnings:
                        log.warning("slurmrestd warning on %s %s: %s", method, path, w)
                    return reply
                problem = f"HTTP {reply.status}" + (f": {'; '.join(map(str, reply.errors))}" if reply.errors else "")
                if not idempotent:
                    raise TransientSchedulerError(scrub(f"{method} {path}: {problem}"))
            if attempt >= self.retries:
                raise TransientSchedulerError(scrub(f"{method} {path}: {problem} (gave up after "
                                                    f"{attempt + 1} attempts)"))
            delay = self._delay(attempt)
            log.warning("slurmrestd %s %s failed (%s); retry %d/%d in %.1fs", method, path,
                        scrub(problem), attempt + 1, self.retries, delay)
            attempt += 1
            await asyncio.sleep(delay)

    async def _send(self, method: str, path: str, body: dict | None, token: str) -> Reply:
        headers = {"X-SLURM-USER-NAME": self.user, "X-SLURM-USER-TOKEN": token,
                   "Accept": "application/json"}
        session = self._get_session()
        try:
            async with session.request(method, self.url + path, json=body, headers=headers) as resp:
                return _reply(method, path, resp.status, await resp.text())
        except aiohttp.ClientResponseError as exc:
            if not isinstance(exc.__cause__, HttpProcessingError):
                raise
        # slurmrestd 26.05 follows every error answer with a second, text/plain one on the
        # same closed connection, which aiohttp rightly rejects. Such answers are refusals
        # (2xx answers are well formed), so asking again, and reading only the first
        # response, repeats no work: a refused submission is refused again.
        status, text = await _first_response(self.url, method, path, body, headers, self.timeout.total)
        return _reply(method, path, status, text)


def _transient(reply: Reply) -> bool:
    """A gateway error, a 5xx SLURM did not explain, or one whose SLURM errors are all
    communication failures (slurmctld restarting). Other 5xx are SLURM's answer."""
    if reply.status in (502, 503, 504):
        return True
    return reply.status >= 500 and (not reply.errors or bool(reply.numbers) and reply.numbers <= TRANSIENT_ERRORS)


def _expired(token: Secret) -> bool:
    exp = jwt_expiry(token.reveal())
    return exp is None or exp <= time.time()


def _reply(method: str, path: str, status: int, text: str) -> Reply:
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError:
        doc = {}
        if status < 500:  # a 5xx with no JSON is a proxy or a crash: retried as such
            raise SchedulerError(scrub(f"{method} {path}: HTTP {status}, not JSON: {text[:200]!r}")) from None
    if not isinstance(doc, dict):
        doc = {}
    return Reply(status, doc, messages(doc, "errors"), messages(doc, "warnings"))


async def _first_response(url: str, method: str, path: str, body: dict | None, headers: dict[str, str],
                          timeout_s: float | None) -> tuple[int, str]:
    """One HTTP/1.1 exchange that reads the first response by Content-Length and ignores the rest."""
    target = URL(url + path)
    payload = json.dumps(body).encode() if body is not None else b""
    head = [f"{method} {target.raw_path_qs} HTTP/1.1", f"Host: {target.raw_host}:{target.port}",
            "Connection: close", f"Content-Length: {len(payload)}", "Content-Type: application/json",
            *(f"{k}: {v}" for k, v in headers.items())]

    async def exchange() -> tuple[int, str]:
        reader, writer = await asyncio.open_connection(target.raw_host, target.port,
                                                       ssl=target.scheme == "https" or None)
        try:
            writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + payload)
            await writer.drain()
            status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}
            length = int(fields.get("content-length", "0"))
            return int(status_line.split()[1]), (await reader.readexactly(length)).decode(errors="replace")
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(exchange(), timeout_s)
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise aiohttp.ClientPayloadError(f"unreadable answer from {url}: {type(exc).__name__}") from None
