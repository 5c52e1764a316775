"""
How a request is authenticated: none, HTTP Basic, a bearer token, an API key (header or query
parameter) or OAuth2 client credentials.

Each scheme is a small object with three jobs: :meth:`Auth.apply` sets what every request of a
session carries, :meth:`Auth.prepare` adds what changes per request (an OAuth2 token, a query-string
key), and :meth:`Auth.secrets` names every value to mask, in each form it can take (Basic's base64).
:func:`auth_from_connection` picks the scheme from an Airflow connection's fields, as the hook
always has. Plain module: no Airflow; requests is imported inside the functions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin

from airflow_provider_mlops.http import redaction
from airflow_provider_mlops.http.exceptions import HttpApiError

if TYPE_CHECKING:
    import requests

AuthType = Literal["none", "basic", "bearer", "api_key", "oauth2"]
AUTH_TYPES: tuple[str, ...] = ("none", "basic", "bearer", "api_key", "oauth2")


class Auth:
    """No authentication; the base of the schemes below."""

    def apply(self, session: requests.Session) -> None:
        """Set what every request of ``session`` carries (headers, ``session.auth``)."""

    def prepare(self, params: dict[str, Any], headers: dict[str, str]) -> None:
        """Add this request's credentials to ``params`` / ``headers`` (changed in place)."""

    def secrets(self) -> list[str]:
        """Every value to mask in logs and error texts, in each form it can appear."""
        return []

    def on_unauthorized(self) -> bool:
        """Called on a 401: return True when credentials were renewed and the request may be retried."""
        return False


@dataclass(kw_only=True)
class BasicAuth(Auth):
    """
    HTTP Basic.

    :param username: the user name (the connection's login).
    :param password: the password (the connection's password).
    """

    username: str
    password: str

    def apply(self, session: requests.Session) -> None:
        session.auth = (self.username, self.password)

    def secrets(self) -> list[str]:
        # The header carries base64("user:password"); a 401 page that echoes it would leak both.
        return [self.password, *redaction.basic_credentials(self.username, self.password)]


@dataclass(kw_only=True)
class BearerAuth(Auth):
    """
    ``Authorization: Bearer <token>``.

    :param token: the token (the ``token`` extra, else the password).
    """

    token: str | None

    def apply(self, session: requests.Session) -> None:
        session.headers["Authorization"] = f"Bearer {self.token}"

    def secrets(self) -> list[str]:
        return [self.token] if self.token else []


@dataclass(kw_only=True)
class ApiKeyAuth(Auth):
    """
    An API key in a header (default ``X-API-Key``) or a query parameter (default ``api_key``).

    :param key: the key.
    :param name: the header or parameter name.
    :param location: ``header`` or ``query``.
    """

    key: str | None
    name: str | None = None
    location: Literal["header", "query"] = "header"

    def apply(self, session: requests.Session) -> None:
        if self.location == "header":
            session.headers[self.name or "X-API-Key"] = str(self.key)

    def prepare(self, params: dict[str, Any], headers: dict[str, str]) -> None:
        if self.location == "query":
            params[self.name or "api_key"] = self.key

    def secrets(self) -> list[str]:
        return [self.key] if self.key else []


@dataclass(kw_only=True)
class OAuth2ClientCredentials(Auth):
    """
    OAuth2 client-credentials grant; the access token is cached until shortly before it expires
    and renewed once on a 401.

    :param token_url: the token endpoint (absolute, or relative to ``base_url``).
    :param client_id: the client id (the connection's login).
    :param client_secret: the client secret (the connection's password).
    :param scope: optional ``scope`` form field.
    :param audience: optional ``audience`` form field.
    :param base_url: what a relative ``token_url`` is resolved against.
    :param timeout: seconds for the token request.
    :param verify: TLS verification, as requests takes it.
    """

    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None
    audience: str | None = None
    base_url: str = ""
    timeout: float = 30.0
    verify: bool | str = True
    _token: str | None = field(default=None, init=False, repr=False)
    _expiry: float = field(default=0.0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def token(self, *, force: bool = False) -> str:
        """An access token, fetched when there is none, it is about to expire, or ``force``."""
        import requests

        with self._lock:
            if self._token and not force and time.monotonic() < self._expiry:
                return self._token
            data = {"grant_type": "client_credentials"}
            for key, value in (("scope", self.scope), ("audience", self.audience)):
                if value:
                    data[key] = value
            try:
                response = requests.post(
                    urljoin(self.base_url, self.token_url),
                    data=data,
                    auth=(self.client_id, self.client_secret),
                    timeout=self.timeout,
                    verify=self.verify,
                )
            except requests.RequestException as err:
                raise HttpApiError(
                    redaction.redact(f"OAuth2 token request failed: {err}", self.secrets())
                ) from None
            if response.status_code >= 400:
                raise HttpApiError(
                    redaction.redact(
                        f"OAuth2 token request to {self.token_url} was refused (HTTP {response.status_code})",
                        self.secrets(),
                    ),
                    response.status_code,
                )
            try:
                payload = response.json()
            except ValueError:
                raise HttpApiError(
                    f"OAuth2 token response from {self.token_url} is not JSON "
                    f"(content-type {response.headers.get('Content-Type')!r})"
                ) from None
            token = payload.get("access_token") if isinstance(payload, Mapping) else None
            if not token:
                raise HttpApiError("OAuth2 token response has no access_token")
            # Masked before it is ever sent: the next DEBUG line may carry it.
            redaction.register(str(token))
            self._token = str(token)
            lifetime = float(payload.get("expires_in") or 3600)
            self._expiry = time.monotonic() + max(lifetime - 30.0, lifetime / 2)
            return self._token

    def prepare(self, params: dict[str, Any], headers: dict[str, str]) -> None:
        headers["Authorization"] = f"Bearer {self.token()}"

    def secrets(self) -> list[str]:
        found = [self.client_secret, *redaction.basic_credentials(self.client_id, self.client_secret)]
        return [s for s in (*found, self._token) if s]

    def on_unauthorized(self) -> bool:
        self.token(force=True)
        return True


def _extra(extra: Mapping[str, Any], name: str, old_name: str) -> Any:
    """
    An extra under its form name, else its old name. The form's names avoid "api_key" and "token":
    Airflow masks ("***") the value of any form field whose name contains them.
    """
    value = extra.get(name)
    return value if value not in (None, "") else extra.get(old_name)


def resolve_auth_type(login: str | None, password: str | None, extra: Mapping[str, Any]) -> str:
    """
    The scheme named by the ``auth_type`` extra, else guessed from the fields: an ``oauth2_url``
    (old name ``token_url``) means oauth2, a ``key_name`` (``api_key_name``) api_key, login and
    password basic, a password or token bearer.
    """
    auth = str(extra.get("auth_type") or "").lower()
    if not auth:
        if _extra(extra, "oauth2_url", "token_url"):
            auth = "oauth2"
        elif _extra(extra, "key_name", "api_key_name"):
            auth = "api_key"
        elif login and password:
            auth = "basic"
        elif password or extra.get("token"):
            auth = "bearer"
        else:
            auth = "none"
    if auth not in AUTH_TYPES:
        raise ValueError(f"auth_type must be none, basic, bearer, api_key or oauth2, got {auth!r}")
    return auth


def auth_from_connection(
    *,
    login: str | None,
    password: str | None,
    extra: Mapping[str, Any],
    base_url: str = "",
    timeout: float = 30.0,
    verify: bool | str = True,
) -> Auth:
    """
    The scheme for a connection's login, password and extras (see :func:`resolve_auth_type`).

    :param login: user name or OAuth2 client id.
    :param password: password, OAuth2 client secret, or the bearer token / API key.
    :param extra: the connection's extras (``auth_type``, ``token``, ``api_key``, ``key_name``,
        ``key_location``, ``oauth2_url``, ``scope``, ``audience``; the old names ``api_key_name``,
        ``api_key_in`` and ``token_url`` are read when the new ones are empty).
    :param base_url: what a relative ``token_url`` is resolved against.
    :param timeout: seconds for an OAuth2 token request.
    :param verify: TLS verification for an OAuth2 token request.
    """
    kind = resolve_auth_type(login, password, extra)
    secret = extra.get("token") or extra.get("api_key") or password
    if kind == "basic":
        return BasicAuth(username=login or "", password=password or "")
    if kind == "bearer":
        return BearerAuth(token=secret)
    if kind == "api_key":
        location = str(_extra(extra, "key_location", "api_key_in") or "header").strip().lower()
        if location not in ("header", "query"):
            # Refused rather than sending no key at all: before the form field was renamed, Airflow
            # saved its masked default, "***", and every request went out without the key (HTTP 401).
            raise ValueError(
                f"API key location (key_location / api_key_in extra) must be 'header' or 'query', got "
                f"{location!r}; set 'API key in' on the connection"
            )
        name = _extra(extra, "key_name", "api_key_name")
        if location == "query":
            # As before the split: a query-string key is the api_key extra or the password.
            return ApiKeyAuth(key=extra.get("api_key") or password, name=name, location="query")
        return ApiKeyAuth(key=secret, name=name, location="header")
    if kind == "oauth2":
        token_url = _extra(extra, "oauth2_url", "token_url")
        if not token_url:
            raise ValueError(
                "auth_type=oauth2 needs a token_url: the OAuth2 token URL field (oauth2_url extra)"
            )
        return OAuth2ClientCredentials(
            token_url=str(token_url),
            client_id=login or "",
            client_secret=password or "",
            scope=extra.get("scope"),
            audience=extra.get("audience"),
            base_url=base_url,
            timeout=timeout,
            verify=verify,
        )
    return Auth()
