"""
How a request is authenticated: none, HTTP Basic, a bearer token, an API key (header or query
parameter) or OAuth2 client credentials, each a ``requests.auth.AuthBase``.

They are requests' own auth objects, so :class:`~airflow_provider_mlops.http.client.ApiClient` and
:class:`~airflow_provider_mlops.hooks.http.HttpApiHook` take any other one as well (requests'
``HTTPDigestAuth``, requests-oauthlib's ``OAuth2``, requests-kerberos / the http provider's Kerberos
auth). On top of ``__call__(request)`` the schemes here name every value to mask, in each form it can
take (Basic's base64), through ``secrets()``; :func:`auth_secrets` reads that, or a requests
``HTTPBasicAuth``'s password, from any auth object. The OAuth2 scheme renews its token on a 401 and
re-sends the request once from a response hook, as requests' ``HTTPDigestAuth`` answers a challenge.
:func:`auth_from_connection` picks the scheme from an Airflow connection's fields, as the hook always
has. Plain module: no Airflow. It subclasses requests' classes, so it imports requests at the top and
is imported only when a request is about to be made (the hook imports it lazily).
"""

# lazy-imports: runtime-only (it subclasses requests' AuthBase; hooks import it when a request is made)
from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from airflow_provider_mlops.http import redaction
from airflow_provider_mlops.http.exceptions import HttpApiError

if TYPE_CHECKING:
    from requests import PreparedRequest, Response

AuthType = Literal["none", "basic", "bearer", "api_key", "oauth2"]
AUTH_TYPES: tuple[str, ...] = ("none", "basic", "bearer", "api_key", "oauth2")


def auth_secrets(auth: Any) -> list[str]:
    """
    Every value to mask for ``auth``: its ``secrets()`` when it has one (the schemes here), else a
    requests ``HTTPBasicAuth``'s password and header forms; nothing for other auth objects (mask
    their secrets through the connection's password or ``ApiClient(secrets=...)``).
    """
    if auth is None:
        return []
    secrets = getattr(auth, "secrets", None)
    if callable(secrets):
        return [s for s in secrets() if s]
    if isinstance(auth, HTTPBasicAuth) and auth.password:
        username = auth.username.decode() if isinstance(auth.username, bytes) else str(auth.username)
        password = auth.password.decode() if isinstance(auth.password, bytes) else str(auth.password)
        return [password, *redaction.basic_credentials(username, password)]
    return []


class NoAuth(AuthBase):
    """No authentication (the request is sent as it is)."""

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        return r

    def secrets(self) -> list[str]:
        """Nothing to mask."""
        return []

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))


class BasicAuth(HTTPBasicAuth):
    """
    HTTP Basic: requests' ``HTTPBasicAuth``, plus the secrets to mask.

    :param username: the user name (the connection's login).
    :param password: the password (the connection's password).
    """

    def __init__(self, *, username: str, password: str) -> None:
        super().__init__(username, password)

    def secrets(self) -> list[str]:
        """The password and the header's base64("user:password"): a 401 page echoing it would leak both."""
        return [self.password, *redaction.basic_credentials(self.username, self.password)]


class BearerAuth(AuthBase):
    """
    ``Authorization: Bearer <token>``.

    :param token: the token (the ``token`` extra, else the password).
    """

    def __init__(self, *, token: str | None) -> None:
        self.token = token

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r

    def secrets(self) -> list[str]:
        """The token."""
        return [self.token] if self.token else []


class ApiKeyAuth(AuthBase):
    """
    An API key in a header (default ``X-API-Key``) or a query parameter (default ``api_key``).

    :param key: the key.
    :param name: the header or parameter name.
    :param location: ``header`` or ``query``.
    """

    def __init__(
        self, *, key: str | None, name: str | None = None, location: Literal["header", "query"] = "header"
    ) -> None:
        self.key = key
        self.name = name
        self.location = location

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        if self.location == "header":
            r.headers[self.name or "X-API-Key"] = str(self.key)
        else:
            # Appended to the query the request already has (a pagination cursor, a caller's params).
            r.prepare_url(r.url, {self.name or "api_key": self.key})
        return r

    def secrets(self) -> list[str]:
        """The key."""
        return [self.key] if self.key else []


class OAuth2ClientCredentials(AuthBase):
    """
    OAuth2 client-credentials grant; the access token is cached until shortly before it expires,
    and on a 401 it is renewed and the request re-sent once (from a response hook).

    :param token_url: the token endpoint (absolute, or relative to ``base_url``).
    :param client_id: the client id (the connection's login).
    :param client_secret: the client secret (the connection's password).
    :param scope: optional ``scope`` form field.
    :param audience: optional ``audience`` form field.
    :param base_url: what a relative ``token_url`` is resolved against.
    :param timeout: seconds for the token request.
    :param verify: TLS verification, as requests takes it.
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        audience: str | None = None,
        base_url: str = "",
        timeout: float = 30.0,
        verify: bool | str = True,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.audience = audience
        self.base_url = base_url
        self.timeout = timeout
        self.verify = verify
        self._token: str | None = None
        self._expiry = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def token(self, *, force: bool = False) -> str:
        """An access token, fetched when there is none, it is about to expire, or ``force``."""
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

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token()}"
        r.register_hook("response", self._renew_on_401)
        return r

    def _renew_on_401(self, r: Response, **kwargs: Any) -> Response:
        """On a 401 (the server revoked the token): renew it and re-send the request once."""
        if r.status_code != 401 or getattr(r.request, "_mlops_token_renewed", False):
            return r
        sent = r.request.headers.get("Authorization")
        r.content  # noqa: B018 - read the body so the connection can be released and reused
        r.close()
        retry = r.request.copy()
        retry._mlops_token_renewed = True  # type: ignore[union-attr]
        # Another thread may have renewed it already: only force a new token if ours was the one sent.
        token = self.token(force=sent == f"Bearer {self._token}")
        retry.headers["Authorization"] = f"Bearer {token}"
        response = r.connection.send(retry, **kwargs)
        response.history.append(r)
        response.request = retry
        return response

    def secrets(self) -> list[str]:
        """The client secret, its Basic forms and the current access token."""
        found = [self.client_secret, *redaction.basic_credentials(self.client_id, self.client_secret)]
        return [s for s in (*found, self._token) if s]


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
) -> AuthBase:
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
    return NoAuth()
