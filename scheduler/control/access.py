"""Who calls the control API: the token of an `Authorization` header (Bearer, or the password
of HTTP Basic, so a browser can open the page), found among the configured ones in constant
time, with its name and role (SPEC section 8, "Audit and roles")."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from ..config.tokens import NamedToken

READS = ("GET", "HEAD")  # all a viewer may do


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class Access:
    def __init__(self, tokens: tuple[NamedToken, ...]):
        if not tokens:
            raise ValueError("the control API needs a token")
        # Digests of one length: each comparison takes the same time whatever was sent.
        self._tokens = [(_digest(t.secret.encode()), t) for t in tokens]

    def who(self, header: str) -> NamedToken | None:
        """The token the header carries, or None. Every token is compared, each in constant
        time, so the time taken says nothing of which one (or how much of one) matched."""
        given = self._given(header)
        if given is None:
            return None
        digest, found = _digest(given), None
        for want, token in self._tokens:
            if hmac.compare_digest(digest, want):
                found = token
        return found

    @staticmethod
    def _given(header: str) -> bytes | None:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return value.encode("latin-1", "replace")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return None
            return decoded.partition(b":")[2]
        return None
