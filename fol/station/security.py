"""Access control and request-forgery protection for the station.

* **Access token.** Listening on a loopback address needs none; any other address
  requires one (``fol station --token`` or ``$FOL_STATION_TOKEN``, at least 12
  characters). A browser signs in once at ``/login``; the cookie it gets holds an HMAC of
  the token under a per-process secret (the token itself never goes into a cookie),
  ``HttpOnly`` and ``SameSite=Strict``. Scripts may send ``Authorization: Bearer TOKEN``.
* **CSRF.** Double-submit token: a random ``fol_csrf`` cookie (``SameSite=Strict``) whose
  value every form repeats in a hidden ``csrf`` field; a POST whose field does not match
  its cookie (compared in constant time), or whose ``Origin`` names another host, is
  refused with 403.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

CSRF_COOKIE = "fol_csrf"
AUTH_COOKIE = "fol_auth"
MIN_TOKEN = 12


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Guard:
    def __init__(self, token: str | None):
        self.token = token or None
        self.secret = secrets.token_bytes(32)

    def auth_value(self) -> str:
        return hmac.new(self.secret, (self.token or "").encode(), hashlib.sha256).hexdigest()

    def check_token(self, given: str) -> bool:
        return bool(self.token) and hmac.compare_digest(str(given).encode(), self.token.encode())

    def authorised(self, request) -> bool:
        if not self.token:
            return True
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer ") and self.check_token(header[7:].strip()):
            return True
        cookie = request.cookies.get(AUTH_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie, self.auth_value())

    @staticmethod
    def csrf_token(request) -> str:
        """The request's CSRF token (its cookie's, or a new one the response must set)."""
        token = request.cookies.get(CSRF_COOKIE, "")
        if len(token) != 43:
            token = getattr(request.state, "new_csrf", None) or secrets.token_urlsafe(32)
            request.state.new_csrf = token
        return token

    @staticmethod
    def csrf_ok(request, form) -> bool:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        field = str(form.get("csrf", ""))
        if not cookie or not field or not hmac.compare_digest(cookie.encode(), field.encode()):
            return False
        origin = request.headers.get("origin")
        if origin and origin != "null":
            host = request.headers.get("host", "")
            if origin.split("://", 1)[-1] != host:
                return False
        return True
