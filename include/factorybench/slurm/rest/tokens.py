"""Where slurmrestd's JWT comes from, and when to fetch a new one.

A token is a credential: it is held in a `Secret` whose repr and str are
redacted, it is only ever unwrapped into the X-SLURM-USER-TOKEN header, and any
text that reaches a log line or an exception goes through `scrub` first.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import binascii
import json
import logging
import re
import time

from factorybench.errors import AuthError
from factorybench.secrets import amask
from factorybench.slurm.transport import CommandRunner

log = logging.getLogger("factorybench.slurm.rest")

# Anything shaped like a JWT (header.payload[.signature], base64url) is hidden in messages.
_JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]*)?")
_SLURM_JWT = re.compile(r"SLURM_JWT=(\S+)")


def scrub(text: str) -> str:
    """Hide every JWT-shaped string, so server or command text can be shown safely."""
    return _JWT_LIKE.sub("<token>", _SLURM_JWT.sub("SLURM_JWT=<token>", text))


class Secret:
    """A token that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim (epoch seconds) of a JWT, read without checking the signature.

    slurmctld checks the signature; we only need to know when to ask for a new one.
    None when the token is not a JWT we can read (then it is used until refused).
    """
    parts = token.split(".")
    if len(parts) < 2:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


class TokenProvider(abc.ABC):
    """Hands out the current token; `refresh` is called after slurmrestd refused one."""

    @abc.abstractmethod
    async def token(self) -> Secret:
        """A token believed to be valid now."""

    @abc.abstractmethod
    async def refresh(self, rejected: Secret | None = None) -> Secret:
        """A new token after `rejected` was refused (the same one if it cannot be renewed).

        When another caller already replaced `rejected`, its replacement is returned,
        so a burst of 401s costs one renewal.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class StaticTokenProvider(TokenProvider):
    """A fixed token, e.g. an Airflow connection's password. It cannot be renewed."""

    def __init__(self, token: str | Secret):
        self._token = token if isinstance(token, Secret) else Secret(token.strip())
        if not self._token.reveal():
            raise ValueError("empty SLURM token")
        self._masked = False

    async def token(self) -> Secret:
        if not self._masked:
            await amask(self._token.reveal())
            self._masked = True
        return self._token

    async def refresh(self, rejected: Secret | None = None) -> Secret:
        return self._token


class CommandTokenProvider(TokenProvider):
    """Runs `scontrol token` (over SSH on a login node, or locally) and caches the result.

    A new token is fetched when the cached one is within `margin_s` of its `exp`,
    and on demand after a 401/403. Concurrent callers share one fetch.
    """

    def __init__(self, runner: CommandRunner, command: str = "scontrol token lifespan=1800",
                 margin_s: float = 60.0, timeout_s: float = 30.0):
        self.runner = runner
        self.command = command
        self.margin_s = margin_s
        self.timeout_s = timeout_s
        self._token: Secret | None = None
        self._expires: float | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"CommandTokenProvider(command={self.command!r})"

    @property
    def expires_at(self) -> float | None:
        """Epoch seconds when the cached token expires (None if unknown or none cached)."""
        return self._expires

    def _fresh(self) -> bool:
        if self._token is None:
            return False
        return self._expires is None or self._expires - time.time() > self.margin_s

    async def token(self) -> Secret:
        if self._fresh():
            return self._token  # type: ignore[return-value]
        async with self._lock:
            if not self._fresh():
                await self._fetch()
            return self._token  # type: ignore[return-value]

    async def refresh(self, rejected: Secret | None = None) -> Secret:
        async with self._lock:
            if rejected is None or self._token is None or self._token == rejected:
                await self._fetch()
            return self._token  # type: ignore[return-value]

    async def _fetch(self) -> None:
        rc, out, err = await self.runner.run(self.command, timeout=self.timeout_s)
        match = _SLURM_JWT.search(out)
        if rc != 0 or not match:
            raise AuthError(f"token command {self.command!r} failed (exit {rc}): "
                            f"{scrub(err.strip() or out.strip())[:300] or 'no SLURM_JWT= in its output'}")
        value = match.group(1).strip().strip("'\"")
        await amask(value)  # Airflow's log masker, where the Airflow layer registered it
        self._token = Secret(value)
        self._expires = jwt_expiry(value)
        left = "unknown" if self._expires is None else f"{self._expires - time.time():.0f}s"
        log.info("fetched a new SLURM token with %r (valid for %s)", self.command, left)
