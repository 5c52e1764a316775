"""
Keep secrets out of log lines and exception texts.

Two guards, because either alone leaks:

- every secret is registered with Airflow's secrets masker (``mask_secret``), which redacts task
  logs, in the forms it can appear in: as is, URL-encoded (query strings) and, for Basic auth, the
  base64 of ``user:password`` (what an ``Authorization`` header or a server echoing it shows);
- a :class:`RedactingFilter` on urllib3's and requests' loggers, because urllib3 logs the request
  line with its query string at DEBUG (``"GET /items?api_key=... HTTP/1.1" 200``) and Airflow's
  masker only sees records routed through a task's log handler (not a worker's stderr, nor
  ``logging.basicConfig(level=DEBUG)`` in a script or a test).

Besides the registered values, query parameters whose names look secret (``api_key=``,
``token=``, ``signature=``...) and URL user-info passwords are masked wherever a URL appears, so a
secret the hook never saw (a token in a next-page URL) is hidden too.

Plain module: no Airflow at import time (the masker is optional), no requests.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

REPLACEMENT = "***"
# Shorter values would mask half of every log line ("id", "ok"); Airflow's own floor is 5.
MIN_SECRET_LENGTH = 3
# Header and parameter names whose values are credentials (substring match on the lower-cased
# name, as Airflow's ``sensitive_var_conn_names`` does).
SENSITIVE_NAME_PARTS = (
    "authorization",
    "auth",
    "token",
    "key",
    "secret",
    "passw",
    "pwd",
    "signature",
    "cookie",
    "session",
    "credential",
)
_SENSITIVE = "|".join(SENSITIVE_NAME_PARTS)
# name=value in a query string, a form body or a request line: the value up to the next separator.
_QUERY_SECRET = re.compile(rf"(?i)((?:^|[?&;\s])[^=&?;#\s\"']*(?:{_SENSITIVE})[^=&?;#\s\"']*=)[^&#\s\"']+")
# scheme://user:password@host
_USERINFO = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
# urllib3's and requests' loggers (each module logs under its own name; a filter on a parent
# logger does not see a child's records).
_LIBRARY_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.response",
    "urllib3.poolmanager",
    "urllib3.util.retry",
    "requests",
)


def is_sensitive_name(name: str) -> bool:
    """Whether a header or parameter called ``name`` carries a credential."""
    lowered = name.lower()
    return any(part in lowered for part in SENSITIVE_NAME_PARTS)


def variants(secret: str) -> set[str]:
    """
    The forms of ``secret`` a log line can show: as is, URL-encoded (``%2B`` and ``+``) and
    JSON-escaped (an error body that echoes the request, ``\\u00fc`` for ``ü``).
    """
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1]}


def basic_credentials(user: str, password: str) -> set[str]:
    """The base64 token of an ``Authorization: Basic`` header, as requests builds it (latin-1)."""
    raw = f"{user}:{password}"
    tokens = {base64.b64encode(raw.encode("utf-8")).decode()}
    with contextlib.suppress(UnicodeEncodeError):  # requests falls back to UTF-8 for these
        tokens.add(base64.b64encode(raw.encode("latin1")).decode())
    return tokens


def header_secrets(name: str, value: str) -> set[str]:
    """
    The secret parts of a header whose name is sensitive: the whole value, the credentials after an
    ``Authorization`` scheme (and, for Basic, the decoded ``user:password`` and password), and each
    cookie value.
    """
    if not is_sensitive_name(name) or not value:
        return set()
    found = {value}
    scheme, _, credentials = value.partition(" ")
    if credentials and scheme.isalpha():
        found.add(credentials.strip())
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                decoded = ""
            if ":" in decoded:
                found.update({decoded, decoded.partition(":")[2]})
    if "cookie" in name.lower():
        for part in value.split(";"):
            found.add(part.partition("=")[2].strip())
    return {s for s in found if s}


class Redactor:
    """
    A growing set of secrets and the text rules above; :meth:`redact` applies both.

    Thread-safe: a hook may be used by several threads, and the log filter runs in any of them.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, *secrets: str | None) -> set[str]:
        """Remember ``secrets`` (and their URL-encoded forms); return the values that were new."""
        new: set[str] = set()
        for secret in secrets:
            if secret is None or not str(secret):
                continue
            for form in variants(str(secret)):
                if len(form) >= MIN_SECRET_LENGTH and form not in self._secrets:
                    new.add(form)
        if new:
            with self._lock:
                self._secrets |= new
                # Longest first, so a secret that contains another is replaced whole.
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
        return new

    def redact(self, text: str) -> str:
        """``text`` with every known secret, secret-looking query value and URL password masked."""
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REPLACEMENT, text)
        text = _QUERY_SECRET.sub(rf"\1{REPLACEMENT}", text)
        return _USERINFO.sub(rf"\1{REPLACEMENT}@", text)

    def __contains__(self, secret: object) -> bool:
        return secret in self._secrets


# The process-wide registry behind the log filter: urllib3 logs without knowing which hook sent
# the request, so the filter must know every hook's secrets.
REGISTRY = Redactor()


def register(*secrets: str | None) -> None:
    """
    Mask ``secrets`` from now on: in this module's log filter and in Airflow's secrets masker.

    Call it before the request that carries them is sent (a DEBUG line is written as it goes out).
    """
    new = REGISTRY.add(*secrets)
    if new:
        from airflow_provider_mlops.utils.secrets import mask_secret

        for form in new:
            mask_secret(form)


def register_headers(headers: Mapping[str, Any] | None) -> None:
    """Register the values of every sensitive header (``Authorization``, ``X-API-Key``, cookies)."""
    for name, value in (headers or {}).items():
        register(*header_secrets(str(name), str(value)))


def register_params(params: Mapping[str, Any] | None) -> None:
    """Register the values of query parameters (or form fields) whose names are sensitive."""
    for name, value in (params or {}).items():
        if is_sensitive_name(str(name)) and value not in (None, ""):
            values = value if isinstance(value, (list, tuple)) else [value]
            register(*(str(v) for v in values))


def redact(text: str, extra: Iterable[str | None] = ()) -> str:
    """Mask the registered secrets, ``extra`` ones and secret-looking URL parts in ``text``."""
    text = REGISTRY.redact(text)
    local = Redactor()
    local.add(*extra)
    return local.redact(text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in the message (and traceback) of each record it sees."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or REGISTRY

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        clean = self.redactor.redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = self.redactor.redact(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = RedactingFilter()


def _library_loggers() -> Iterator[logging.Logger]:
    names = set(_LIBRARY_LOGGERS)
    names.update(
        name for name in list(logging.root.manager.loggerDict) if name.startswith(("urllib3.", "requests."))
    )
    for name in sorted(names):
        yield logging.getLogger(name)


def install_log_filter() -> None:
    """
    Put the redacting filter on urllib3's and requests' loggers (idempotent).

    Call it after importing requests (which creates urllib3's module loggers) and before the first
    request.
    """
    for logger in _library_loggers():
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
