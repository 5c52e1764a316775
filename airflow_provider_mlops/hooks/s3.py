"""
Object storage hook: S3 and any S3-compatible endpoint (boto3 + pyarrow.fs), or local paths.

Every call takes a URI: ``s3://bucket/prefix/...`` goes to S3 with the connection's credentials and
``endpoint_url``; a plain path or ``file://`` URI goes to the local file system, so the embedded
default needs no server. Datasets (Parquet, CSV, JSON Lines) are read and written as streams of
Arrow record batches: nothing holds a whole file in memory. Parquet datasets are Delta Lake tables
(:mod:`airflow_provider_mlops.datasets.delta`, delta-rs with the same credentials and endpoint).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from airflow.providers.common.compat.sdk import AirflowFailException, BaseHook

from airflow_provider_mlops.datasets.errors import FORMATS, DatasetFormat
from airflow_provider_mlops.hooks.files_source import FilesReader
from airflow_provider_mlops.storage.uri import StorageLocation, parse_uri
from airflow_provider_mlops.utils.connection import as_bool, redact

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    import pyarrow as pa
    import pyarrow.fs as pafs

    from airflow_provider_mlops.datasets.delta import PendingVersion
    from airflow_provider_mlops.sinks.specs import SinkSpec
    from airflow_provider_mlops.storage.streams import OutputStream

# Kept importable from here: the URI model and the dataset format moved to their own layers.
__all__ = [
    "FORMATS",
    "DatasetFormat",
    "ObjectStorageHook",
    "S3Tls",
    "StorageLocation",
    "check_endpoint_tls",
    "parse_uri",
]


@dataclass(frozen=True)
class S3Tls:
    """
    The connection's ``verify`` extra, read once, as each of the three S3 clients takes it.

    ``verify`` absent or true: each client's default trust store (boto3: certifi's bundle, or
    ``AWS_CA_BUNDLE``; pyarrow and delta-rs: the system's); false: no certificate verification
    (insecure); a path: that PEM CA bundle, in place of those, for every client.

    :param conn_id: the connection (named in errors).
    :param verify: False when verification is off.
    :param ca_file: the CA bundle's path, or None.
    """

    conn_id: str | None
    verify: bool = True
    ca_file: str | None = None

    @classmethod
    def from_extra(cls, conn_id: str | None, value: Any) -> S3Tls:
        """Parse ``verify``: a boolean (also as text), or the path of an existing CA bundle file."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return cls(conn_id)
        try:
            return cls(conn_id, verify=bool(as_bool(value, name="verify")))
        except ValueError:
            pass
        path = os.path.expanduser(str(value).strip())
        if not os.path.isfile(path):
            raise AirflowFailException(
                f"Connection {conn_id!r}: extra verify={value!r} is neither true/false nor an existing CA "
                "bundle file: set it to the path of a PEM file with the CA certificate(s) that signed the "
                "endpoint's certificate (readable on every worker), or to false to skip verification"
            )
        return cls(conn_id, ca_file=path)

    @property
    def boto3_verify(self) -> bool | str | None:
        """boto3's ``verify``: the bundle, False, or None (its default trust store)."""
        return self.ca_file or (None if self.verify else False)

    @property
    def pyarrow_options(self) -> dict[str, str]:
        """pyarrow ``S3FileSystem`` options (it has no way to skip verification: see the hook)."""
        return {"tls_ca_file_path": self.ca_file} if self.ca_file else {}

    @property
    def delta_options(self) -> dict[str, str]:
        """delta-rs (object_store) storage options (a CA bundle goes by ``SSL_CERT_FILE``)."""
        return {} if self.verify else {"AWS_ALLOW_INVALID_CERTIFICATES": "true"}

    def untrusted(
        self, endpoint: str, reason: str, trust: str, code: int | None = None
    ) -> AirflowFailException:
        """
        The error of an endpoint whose certificate ``trust`` (a trust store, named) refused, with the
        fix for the reason: a CA bundle for an unknown issuer; a renewed certificate when it expired;
        a host name the certificate names when it is for another host.

        :param code: OpenSSL's verify code, when known (else the reason's text is read).
        """
        head = f"Connection {self.conn_id!r}: the S3 endpoint {endpoint} presented a TLS certificate that"
        kind = _certificate_problem(reason, code)
        if kind == "expired":
            return AirflowFailException(
                f"{head} has expired or is not yet valid ({reason}): {_fix('expired')}. {_INSECURE}"
            )
        if kind == "name":
            host = urlparse(endpoint).hostname or endpoint
            return AirflowFailException(
                f"{head} does not name the host {host} ({reason}): {_fix('name')}. {_INSECURE}"
            )
        return AirflowFailException(f"{head} {trust} does not trust ({reason}): {_fix('untrusted')}.")

    def refused(self, endpoint: str, err: BaseException) -> AirflowFailException | None:
        """
        ``err``, a client's failure, as :meth:`untrusted` when it is a refusal of the endpoint's
        certificate (a retry cannot fix that: a certificate replaced after the check), else None.
        """
        if isinstance(err, AirflowFailException) or not _certificate_problem(str(err)):
            return None
        trust = f"the CA bundle {self.ca_file}" if self.ca_file else "the client's trust store"
        return self.untrusted(endpoint, str(err), trust)


_INSECURE = "Extra 'verify' false skips verification (insecure)."
# OpenSSL's verify codes: 9/10 not yet valid / expired; 62/64 host name / IP address mismatch
_EXPIRED_CODES, _NAME_CODES = frozenset({9, 10}), frozenset({62, 64})
# how boto3 (OpenSSL), pyarrow (curl) and delta-rs (rustls) word each refusal
_EXPIRED_ERRORS = ("certificate has expired", "certificate is not yet valid", ": Expired", "NotValidYet")
_NAME_ERRORS = (
    "Hostname mismatch",
    "IP address mismatch",
    "NotValidForName",
    "no alternative certificate subject name matches",
    "does not match target host name",
)
_CERTIFICATE_ERRORS = ("CERTIFICATE_VERIFY_FAILED", "curlCode: 60", "invalid peer certificate")


def _certificate_problem(text: str, code: int | None = None) -> str | None:
    """``expired``, ``name`` or ``untrusted`` when ``text`` (or ``code``) is a certificate refusal."""
    if code in _EXPIRED_CODES or any(marker in text for marker in _EXPIRED_ERRORS):
        return "expired"
    if code in _NAME_CODES or any(marker in text for marker in _NAME_ERRORS):
        return "name"
    if code is not None or any(marker in text for marker in _CERTIFICATE_ERRORS):
        return "untrusted"
    return None


# how pyarrow (the AWS SDK) and delta-rs (object_store) word a request a policy denied
_ACCESS_DENIED_ERRORS = ("ACCESS_DENIED", "AccessDenied")


def _access_denied(err: BaseException) -> bool:
    """Whether a client's error is S3's AccessDenied (it reached the endpoint and was authenticated)."""
    return any(marker in str(err) for marker in _ACCESS_DENIED_ERRORS)


def _fix(kind: str) -> str:
    """What fixes a certificate refused for ``kind`` (:func:`_certificate_problem`)."""
    if kind == "expired":
        return (
            "renew the endpoint's certificate (or correct this machine's clock); a CA bundle in 'verify' "
            "does not fix this"
        )
    if kind == "name":
        return (
            "set the connection's endpoint_url to a host name the certificate names (its subjectAltName), "
            "or have the certificate reissued for this host; a CA bundle in 'verify' does not fix this"
        )
    return (
        "set the connection's extra 'verify' to the path of a CA bundle (PEM) holding the CA that signed "
        "it, or to false to skip verification (insecure)"
    )


def _certificate_hint(err: BaseException) -> str:
    """The fix, when ``err`` is a client's refusal of the endpoint's certificate (else nothing)."""
    if isinstance(err, AirflowFailException):
        return ""  # already says it (S3Tls.refused)
    kind = _certificate_problem(str(err))
    what = {
        "expired": "has expired (or is not yet valid)",
        "name": "does not name its host",
        "untrusted": "is not trusted",
    }
    return f". The endpoint's TLS certificate {what[kind]}: {_fix(kind)}" if kind else ""


# Trust stores each endpoint's certificate passed under, for the process: a deferred sensor builds a
# hook per poll, and each hook's check was a handshake per trust store. Keyed by the store's file
# (and its size and time: a rotated bundle is checked again); a refusal is not kept, so a fixed
# bundle is seen at once.
_TLS_TRUSTED: set[tuple[str, int, tuple[Any, ...]]] = set()
_TLS_CHECK_TIMEOUT = 3.0  # seconds for the connection and the handshake


def _store_identity(cafile: str | None) -> tuple[Any, ...]:
    """What a trust store's verdict depends on: its file's path, size and time (the system's: the env)."""
    if cafile is None:
        return ("system", os.environ.get(_CA_ENV), os.environ.get("SSL_CERT_DIR"))
    try:
        stat = os.stat(cafile)
    except OSError:
        return (cafile,)
    return (cafile, stat.st_size, stat.st_mtime_ns)


def _behind_proxy(host: str) -> bool:
    """Whether an https request to ``host`` goes through a proxy (``HTTPS_PROXY`` and not ``NO_PROXY``)."""
    from urllib.request import getproxies, proxy_bypass

    return bool(getproxies().get("https")) and not proxy_bypass(host)


def check_endpoint_tls(tls: S3Tls, endpoint: str | None) -> None:
    """
    A TLS handshake with an ``https`` endpoint under each trust store the clients use: the ``verify``
    CA bundle, or else the system's (pyarrow, delta-rs) and boto3's own (certifi's, or
    ``AWS_CA_BUNDLE``). An untrusted certificate raises :meth:`S3Tls.untrusted`; a handshake that
    fails for another reason (no route, no answer within 3 s) is left to the clients. Nothing is
    checked for ``http``, with ``verify`` false, without an endpoint (AWS itself) or when a proxy
    applies to the endpoint (the clients then report themselves). A trusted verdict is kept per
    endpoint and trust store for the process.

    :raises AirflowFailException: the certificate is not trusted.
    """
    import socket
    import ssl

    parsed = urlparse(endpoint or "")
    host, port = parsed.hostname, parsed.port or 443
    if not (tls.verify and parsed.scheme == "https" and host):
        return
    if _behind_proxy(host):
        return
    stores: list[tuple[str | None, str]]
    if tls.ca_file:
        stores = [(tls.ca_file, f"the CA bundle {tls.ca_file}")]
    else:
        boto3_bundle = _boto3_default_bundle()
        stores = [
            (None, "the system's trust store (used by pyarrow and delta-rs)"),
            (boto3_bundle, f"boto3's CA bundle {boto3_bundle}"),
        ]
    for cafile, trust in stores:
        verdict = (host, port, _store_identity(cafile))
        if verdict in _TLS_TRUSTED:
            continue
        if cafile is None:
            # the system store is read from SSL_CERT_FILE too: not while another connection's bundle is set
            with _trust_scope(None, tls.conn_id):
                context = ssl.create_default_context()
        else:
            context = ssl.create_default_context(cafile=cafile)
        try:
            with (
                socket.create_connection((host, port), timeout=_TLS_CHECK_TIMEOUT) as sock,
                context.wrap_socket(sock, server_hostname=host),
            ):
                pass
        except ssl.SSLCertVerificationError as err:
            reason = err.verify_message or str(err)
            raise tls.untrusted(str(endpoint), reason, trust, err.verify_code) from None
        except (OSError, ssl.SSLError):
            return
        _TLS_TRUSTED.add(verdict)


def _boto3_default_bundle() -> str | None:
    """The CA bundle boto3 verifies with when ``verify`` is not set (``AWS_CA_BUNDLE``, else certifi's)."""
    import botocore.session
    from botocore.httpsession import get_cert_path

    return botocore.session.get_session().get_config_variable("ca_bundle") or get_cert_path(True)


# delta-rs reads a CA bundle only from SSL_CERT_FILE (rustls' native roots), when it builds a client;
# Python's TLS check of the system store (and pyarrow's, delta-rs's default roots) read it too. It is
# process-wide: the variable is set around delta-rs calls only, and one trust store is active at a
# time: scopes of the active bundle share it; those of another bundle, or of none (the system store),
# wait until its users are done (a bounded wait, then a retryable error).
_CA_ENV = "SSL_CERT_FILE"
_CA_SCOPE_WAIT = 300.0  # seconds a scope waits for another trust store's users
_ca_scope_change = threading.Condition()
_ca_scope: dict[str, Any] = {"active": None, "ca_file": None, "depth": 0, "saved": None, "waiting": 0}
_ca_scope_held = threading.local()
_SYSTEM = "the system trust store"


@contextlib.contextmanager
def _trust_scope(ca_file: str | None, conn_id: str | None) -> Iterator[None]:
    """
    Hold the process's trust store: ``SSL_CERT_FILE`` set to ``ca_file`` (None: left as it was, the
    system store) for the duration. Waits while another trust store is active.

    :raises TimeoutError: another trust store stayed active for ``_CA_SCOPE_WAIT`` seconds.
    """
    key = ca_file or _SYSTEM
    held: list[str] = _ca_scope_held.__dict__.setdefault("keys", [])
    with _ca_scope_change:
        if not (key in held and _ca_scope["active"] == key):  # nested in this thread's own scope: joins
            _ca_scope["waiting"] += 1
            _ca_scope_change.notify_all()
            try:
                free = _ca_scope_change.wait_for(
                    lambda: not _ca_scope["depth"] or _ca_scope["active"] == key, timeout=_CA_SCOPE_WAIT
                )
            finally:
                _ca_scope["waiting"] -= 1
            if not free:
                raise TimeoutError(
                    f"Connection {conn_id!r}: waited {_CA_SCOPE_WAIT:.0f} s for {_CA_ENV} (process-wide: "
                    f"delta-rs reads a CA bundle only from it) to be free of another connection's CA "
                    f"bundle ({_ca_scope['active']}), in use by a concurrent operation in this process; "
                    "a retry can succeed, or run them in separate tasks"
                )
        if not _ca_scope["depth"]:
            _ca_scope.update(active=key, ca_file=ca_file, saved=os.environ.get(_CA_ENV))
            if ca_file:
                os.environ[_CA_ENV] = ca_file
        _ca_scope["depth"] += 1
        held.append(key)
    try:
        yield
    finally:
        with _ca_scope_change:
            held.pop()
            _ca_scope["depth"] -= 1
            if not _ca_scope["depth"]:
                if _ca_scope["ca_file"]:
                    if _ca_scope["saved"] is None:
                        os.environ.pop(_CA_ENV, None)
                    else:
                        os.environ[_CA_ENV] = _ca_scope["saved"]
                _ca_scope.update(active=None, ca_file=None, saved=None)
                _ca_scope_change.notify_all()


def _ca_bundle_environment(tls: S3Tls) -> contextlib.AbstractContextManager[None]:
    """Where delta-rs builds clients for ``tls``: its CA bundle, or the system store (none when unverified)."""
    if not tls.verify:
        return contextlib.nullcontext()  # no certificate is verified: any trust store will do
    return _trust_scope(tls.ca_file, tls.conn_id)


class ObjectStorageHook(FilesReader, BaseHook):
    """
    Read and write datasets and objects on S3 (or an S3-compatible server) and local storage.

    Works with this provider's ``mlops_s3`` connections and the Amazon provider's ``aws``
    connections. Login / password are the access key id / secret (or ``aws_access_key_id`` /
    ``aws_secret_access_key`` extras); extras ``endpoint_url``, ``region_name``, ``aws_session_token``,
    ``verify``, ``addressing_style`` and ``bucket`` (checked by :meth:`test_connection`). Without a
    connection, boto3's default credential chain is used (instance profile, environment...).

    TLS (:class:`S3Tls`): ``verify`` reaches the three clients the hook uses (boto3 for objects and
    uploads, pyarrow's S3 file system for reading Delta logs, data files and exports, delta-rs for
    table commits): ``false`` skips verification in all three (pyarrow cannot, so its reads then go
    through boto3), a CA bundle path is trusted by all three (delta-rs reads it from
    ``SSL_CERT_FILE``, set around its calls only; one trust store at a time per process, other
    connections' delta-rs calls wait meanwhile). An ``https``
    ``endpoint_url`` whose certificate is not trusted fails at the first S3 call, before any work,
    with an error that names the connection and says to set ``verify`` (:meth:`check_tls`).

    :param aws_conn_id: the Airflow connection id, or None for the default credential chain.
    """

    conn_name_attr = "aws_conn_id"
    default_conn_name = "aws_default"
    conn_type = "mlops-s3"
    hook_name = "S3 / object storage (MLOps)"

    def __init__(self, aws_conn_id: str | None = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id

    # ----------------------------------------------------------------------------------------------
    # configuration
    # ----------------------------------------------------------------------------------------------
    @cached_property
    def settings(self) -> dict[str, Any]:
        """Credentials and endpoint from the connection (empty when there is none)."""
        if not self.aws_conn_id:
            return {}
        conn = self.get_connection(self.aws_conn_id)
        extra = conn.extra_dejson
        service = (extra.get("service_config") or {}).get("s3") or {}
        endpoint = extra.get("endpoint_url") or service.get("endpoint_url") or extra.get("host")
        if not endpoint and conn.host:
            scheme = "https" if "://" not in conn.host else ""
            endpoint = f"{scheme}://{conn.host}" if scheme else conn.host
            if conn.port:
                endpoint = f"{endpoint}:{conn.port}"
        method = extra.get("assume_role_method") or "assume_role"
        if method != "assume_role":
            # The amazon provider's SAML / web-identity flows need its own machinery: refuse
            # rather than silently connect with other credentials.
            raise ValueError(
                f"Connection {self.aws_conn_id!r}: assume_role_method={method!r} is not supported by "
                "airflow-provider-mlops; use role_arn with assume_role, a profile, or keys"
            )
        settings = {
            "access_key": conn.login or extra.get("aws_access_key_id"),
            "secret_key": conn.password or extra.get("aws_secret_access_key"),
            "session_token": extra.get("aws_session_token"),
            "region": extra.get("region_name") or extra.get("region") or "us-east-1",
            "endpoint_url": endpoint,
            "verify": extra.get("verify"),
            "addressing_style": extra.get("addressing_style") or ("path" if endpoint else None),
            "bucket": extra.get("bucket") or conn.schema or None,
        }
        profile, role_arn = extra.get("profile_name"), extra.get("role_arn")
        if profile or role_arn:
            settings.update(self._resolved_credentials(settings, extra, profile, role_arn))
        return settings

    def _resolved_credentials(
        self, settings: dict[str, Any], extra: dict[str, Any], profile: str | None, role_arn: str | None
    ) -> dict[str, Any]:
        """
        The ``aws`` connection's ``profile_name`` and ``role_arn`` (the amazon provider's extras),
        resolved once into temporary keys that both boto3 and pyarrow's S3 file system use.

        Not the amazon provider's refreshing session: its connection wrapper would add the provider
        as a dependency; role credentials last ``duration_seconds`` (default 3600), which bounds a
        task's storage work.
        """
        import boto3

        session = boto3.session.Session(
            profile_name=profile or None,
            aws_access_key_id=None if profile else settings["access_key"],
            aws_secret_access_key=None if profile else settings["secret_key"],
            aws_session_token=None if profile else settings["session_token"],
            region_name=settings["region"],
        )
        if role_arn:
            kwargs = dict(extra.get("assume_role_kwargs") or {})
            kwargs.setdefault("RoleSessionName", f"airflow-mlops-{self.aws_conn_id}"[:64])
            if extra.get("external_id"):
                kwargs.setdefault("ExternalId", extra["external_id"])
            if extra.get("duration_seconds"):
                kwargs.setdefault("DurationSeconds", int(extra["duration_seconds"]))
            # the same TLS settings as the S3 clients, checked first (a certificate named, not retried)
            tls = S3Tls.from_extra(self.aws_conn_id, extra.get("verify"))
            endpoint = extra.get("sts_endpoint_url") or settings["endpoint_url"] or None
            check_endpoint_tls(tls, endpoint)
            sts = session.client("sts", endpoint_url=endpoint, verify=tls.boto3_verify)
            credentials = sts.assume_role(RoleArn=role_arn, **kwargs)["Credentials"]
            return {
                "access_key": credentials["AccessKeyId"],
                "secret_key": credentials["SecretAccessKey"],
                "session_token": credentials["SessionToken"],
            }
        frozen = session.get_credentials()
        if frozen is None:
            raise ValueError(f"Connection {self.aws_conn_id!r}: AWS profile {profile!r} has no credentials")
        frozen = frozen.get_frozen_credentials()
        return {
            "access_key": frozen.access_key,
            "secret_key": frozen.secret_key,
            "session_token": frozen.token,
        }

    def _secrets(self) -> list[str | None]:
        return [self.settings.get("secret_key"), self.settings.get("session_token")]

    @cached_property
    def tls(self) -> S3Tls:
        """The connection's TLS verification (extra ``verify``), as each S3 client takes it."""
        return S3Tls.from_extra(self.aws_conn_id, self.settings.get("verify"))

    def check_tls(self) -> None:
        """
        Before the first S3 client is built: a TLS handshake with an ``https`` ``endpoint_url`` under
        each trust store the clients will use (:func:`check_endpoint_tls`). An untrusted certificate
        fails here, naming the connection, the trust store and the fix, before any work: not as a
        client error after retries, or halfway through a task.
        """
        if not self.__dict__.get("_tls_checked"):
            check_endpoint_tls(self.tls, self.settings.get("endpoint_url"))
            self.__dict__["_tls_checked"] = True

    @cached_property
    def client(self) -> Any:
        """A boto3 S3 client for the connection."""
        import boto3
        from botocore.config import Config

        s = self.settings
        self.check_tls()
        config = Config(
            retries={"max_attempts": 5, "mode": "adaptive"},
            s3={"addressing_style": s["addressing_style"]} if s.get("addressing_style") else None,
        )
        client = boto3.session.Session().client(
            "s3",
            aws_access_key_id=s.get("access_key"),
            aws_secret_access_key=s.get("secret_key"),
            aws_session_token=s.get("session_token"),
            region_name=s.get("region"),
            endpoint_url=s.get("endpoint_url"),
            verify=self.tls.boto3_verify,
            config=config,
        )
        client.meta.events.register("after-call-error", self._certificate_refused)
        return client

    @cached_property
    def s3_filesystem(self) -> pafs.FileSystem:
        """
        A pyarrow S3 file system with the same credentials, endpoint and TLS settings. pyarrow's
        ``S3FileSystem`` takes a CA bundle (``tls_ca_file_path``, in recent releases) but cannot skip
        verification: with ``verify: false`` (or a CA bundle on an older pyarrow) the reads go through
        the boto3 client instead (:mod:`~airflow_provider_mlops.hooks.s3_boto3_fs`).
        """
        import pyarrow.fs as pafs

        s = self.settings
        self.check_tls()
        from airflow_provider_mlops.hooks.s3_boto3_fs import boto3_filesystem

        if not self.tls.verify:
            return boto3_filesystem(self.client)
        kwargs: dict[str, Any] = {"region": s.get("region") or "us-east-1", **self.tls.pyarrow_options}
        if s.get("access_key"):
            kwargs.update(access_key=s["access_key"], secret_key=s["secret_key"])
            if s.get("session_token"):
                kwargs["session_token"] = s["session_token"]
        if endpoint := s.get("endpoint_url"):
            parsed = urlparse(endpoint)
            kwargs["endpoint_override"] = parsed.netloc or parsed.path
            kwargs["scheme"] = parsed.scheme or "https"
            kwargs["force_virtual_addressing"] = s.get("addressing_style") == "virtual"
        try:
            return pafs.S3FileSystem(**kwargs)
        except TypeError:
            if "tls_ca_file_path" not in kwargs:
                raise
            # an older pyarrow without tls_ca_file_path: the bundle's reads go through boto3
            return boto3_filesystem(self.client)

    def delta_storage_options(self) -> dict[str, str]:
        """
        The connection as delta-rs (object_store) storage options: keys, region, endpoint (plain
        http allowed when the endpoint says so), addressing style, TLS verification off when
        ``verify`` is false. Retries are bounded (3 tries within 30 s) so that a storage that keeps
        failing fails the write instead of hanging it for object_store's default 3 minutes.

        object_store has no option for a CA bundle: it reads one from ``SSL_CERT_FILE``, which
        :meth:`delta_client_scope` sets around delta-rs calls.
        """
        s = self.settings
        self.check_tls()
        options: dict[str, str] = {"AWS_REGION": s.get("region") or "us-east-1"}
        if s.get("access_key"):
            options["AWS_ACCESS_KEY_ID"] = s["access_key"]
            options["AWS_SECRET_ACCESS_KEY"] = s["secret_key"]
            if s.get("session_token"):
                options["AWS_SESSION_TOKEN"] = s["session_token"]
        if endpoint := s.get("endpoint_url"):
            options["AWS_ENDPOINT_URL"] = endpoint
            if endpoint.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        if style := s.get("addressing_style"):
            options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "true" if style == "virtual" else "false"
        options.update(self.tls.delta_options)
        options.update({"max_retries": "3", "retry_timeout": "30s"})
        return options

    def delta_client_scope(self) -> contextlib.AbstractContextManager[None]:
        """
        Where delta-rs builds its S3 clients (opening or creating a table): with a ``verify`` CA
        bundle, ``SSL_CERT_FILE`` names it for the duration (object_store's only way to take one),
        and is restored after. One trust store at a time per process: a scope of another bundle (or
        of the system store) waits until the active one's users are done.
        """
        if not self.aws_conn_id or str(self.settings.get("endpoint_url") or "").startswith("http://"):
            return contextlib.nullcontext()
        return self._delta_scope()

    @contextlib.contextmanager
    def _delta_scope(self) -> Iterator[None]:
        with _ca_bundle_environment(self.tls):
            try:
                yield
            except Exception as err:
                # a certificate refused after the check passed (replaced meanwhile): named, not retried
                if refusal := self.tls.refused(self._endpoint_description(bare=True), err):
                    raise refusal from err
                raise

    def _certificate_refused(self, exception: BaseException | None = None, **_: Any) -> None:
        """boto3's ``after-call-error`` event: a refused certificate raises :meth:`S3Tls.refused`."""
        if exception is not None and (
            refusal := self.tls.refused(self._endpoint_description(bare=True), exception)
        ):
            raise refusal from exception

    def filesystem(self, uri: str) -> tuple[pafs.FileSystem, StorageLocation]:
        """The pyarrow file system for ``uri`` and the parsed location."""
        import pyarrow.fs as pafs

        location = parse_uri(uri)
        if location.scheme == "s3":
            return self.s3_filesystem, location
        return pafs.LocalFileSystem(), location

    # ----------------------------------------------------------------------------------------------
    # connection test
    # ----------------------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """
        Check credentials, endpoint and TLS settings: the certificate of an ``https`` endpoint
        against ``verify`` (:meth:`check_tls`), then ``head_bucket`` on the ``bucket`` extra with boto3
        and one listing in it with pyarrow's and delta-rs's clients (what tasks read and write
        datasets with); without a ``bucket`` extra, ``list_buckets`` with boto3 only.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            bucket = self.settings.get("bucket")
            if bucket:
                self.client.head_bucket(Bucket=bucket)
                problem, denied = self._test_other_clients(bucket)
                if problem:
                    return False, redact(problem, self._secrets())
                notes = "".join(f"; {client} reached; listing denied by policy" for client in denied)
                return True, f"Connection successfully tested: bucket {bucket!r} is reachable{notes}"
            self.client.list_buckets()
            return True, "Connection successfully tested: credentials accepted"
        except AirflowFailException as err:
            return False, str(err)
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchBucket"):
                return False, f"Bucket {self.settings.get('bucket')!r} does not exist"
            if (
                code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")
                or status == 403
            ):
                return False, f"Access denied ({code}): check the access key id and secret key"
            return False, redact(f"S3 error {code}: {err}", self._secrets())
        except (BotoCoreError, ValueError, OSError) as err:
            message = f"Cannot reach {self._endpoint_description()}: {err}{_certificate_hint(err)}"
            return False, redact(message, self._secrets())

    def _test_other_clients(self, bucket: str) -> tuple[str | None, list[str]]:
        """
        What pyarrow's and delta-rs's clients say of ``bucket``: the failure (None: both reached it)
        and the clients whose probe listing a policy denied (they reached the endpoint through TLS
        with the credentials, which is what is tested of them).
        """
        import uuid

        import pyarrow.fs as pafs
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        denied: list[str] = []
        try:
            self.s3_filesystem.get_file_info(
                pafs.FileSelector(f"{bucket}/.mlops-connection-test/", allow_not_found=True)
            )
        except OSError as err:
            if not _access_denied(err):
                return (
                    f"boto3 reached bucket {bucket!r}, but pyarrow's S3 client did not: "
                    f"{err}{_certificate_hint(err)}"
                ), denied
            denied.append("pyarrow")
        try:
            with self.delta_client_scope():
                DeltaTable(
                    f"s3://{bucket}/.mlops-connection-test-{uuid.uuid4().hex}",
                    storage_options=self.delta_storage_options(),
                )
        except TableNotFoundError:
            pass  # it listed the (empty) place: reached
        except Exception as err:
            if not _access_denied(err):
                return (
                    f"boto3 reached bucket {bucket!r}, but delta-rs's S3 client did not: "
                    f"{err}{_certificate_hint(err)}"
                ), denied
            denied.append("delta-rs")
        return None, denied

    def _endpoint_description(self, *, bare: bool = False) -> str:
        """The endpoint as a person would name it: without ``endpoint_url``, AWS's own for the region."""
        if endpoint := self.settings.get("endpoint_url"):
            return endpoint if bare else f"S3 endpoint {endpoint}"
        return f"the AWS default S3 endpoint for region {self.settings.get('region') or 'us-east-1'}"

    # ----------------------------------------------------------------------------------------------
    # objects
    # ----------------------------------------------------------------------------------------------
    def list_uris(self, uri: str) -> list[str]:
        """Every object / file below the prefix ``uri`` (recursive), as URIs."""
        location = parse_uri(uri)
        if location.scheme == "file":
            root = Path(location.key)
            if root.is_file():
                return [root.as_uri()]
            if not root.exists():
                return []
            return sorted(p.as_uri() for p in root.rglob("*") if p.is_file())
        paginator = self.client.get_paginator("list_objects_v2")
        out: list[str] = []
        for page in paginator.paginate(Bucket=location.bucket, Prefix=location.key):
            out.extend(f"s3://{location.bucket}/{item['Key']}" for item in page.get("Contents", []))
        return sorted(out)

    def delete_prefix(self, uri: str) -> int:
        """Delete every object / file below ``uri``; returns how many were deleted."""
        location = parse_uri(uri)
        if location.scheme == "file":
            root = Path(location.key)
            if root.is_file():
                root.unlink()
                return 1
            if not root.exists():
                return 0
            count = sum(1 for p in root.rglob("*") if p.is_file())
            shutil.rmtree(root)
            return count
        prefix = location.key if location.key.endswith("/") or not location.key else location.key + "/"
        uris = self.list_uris(f"s3://{location.bucket}/{prefix}")
        if location.key and not location.key.endswith("/") and self.exists(uri):
            uris.append(uri)
        return self.delete_uris(uris)

    def delete_uris(self, uris: list[str]) -> int:
        """Delete these objects / files (missing ones are fine); returns how many were asked for."""
        by_bucket: dict[str, list[str]] = {}
        for uri in uris:
            location = parse_uri(uri)
            if location.scheme == "file":
                Path(location.key).unlink(missing_ok=True)
            else:
                by_bucket.setdefault(location.bucket, []).append(location.key)
        for bucket, keys in by_bucket.items():
            for start in range(0, len(keys), 1000):
                chunk = keys[start : start + 1000]
                response = self.client.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )
                if errors := response.get("Errors"):
                    raise OSError(f"Could not delete {len(errors)} objects in bucket {bucket}: {errors[:3]}")
        return len(uris)

    def exists(self, uri: str) -> bool:
        location = parse_uri(uri)
        if location.scheme == "file":
            return os.path.exists(location.key)
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=location.bucket, Key=location.key)
            return True
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def put_bytes(self, uri: str, data: bytes, *, content_type: str | None = None) -> None:
        """Write a small object atomically (a single PUT on S3, write + rename locally)."""
        location = parse_uri(uri)
        if location.scheme == "file":
            path = Path(location.key)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            return
        extra = {"ContentType": content_type} if content_type else {}
        self.client.put_object(Bucket=location.bucket, Key=location.key, Body=data, **extra)

    def get_bytes(self, uri: str) -> bytes:
        """Read a small object whole."""
        location = parse_uri(uri)
        if location.scheme == "file":
            return Path(location.key).read_bytes()
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(f"No object at {uri}") from err
            raise

    def copy(self, source_uri: str, dest_uri: str) -> None:
        """Copy one object (server-side on S3; streamed between different systems)."""
        src, dst = parse_uri(source_uri), parse_uri(dest_uri)
        if src.scheme == dst.scheme == "s3":
            self.client.copy({"Bucket": src.bucket, "Key": src.key}, dst.bucket, dst.key)
            return
        if src.scheme == dst.scheme == "file":
            Path(dst.key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src.key, dst.key)
            return
        src_fs, _ = self.filesystem(source_uri)
        writer = self.open_output_stream(dest_uri)
        try:
            with src_fs.open_input_stream(src.path) as reader:
                while chunk := reader.read(8 << 20):
                    writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        writer.close()

    def open_output_stream(self, uri: str, *, part_size: int = 8 << 20) -> OutputStream:
        """
        A writable binary stream to ``uri``: multipart upload on S3 (one part buffered at a time),
        a temporary file renamed at close locally. Nothing is visible at ``uri`` before ``close()``;
        ``abort()`` discards what was written.
        """
        from airflow_provider_mlops.storage.streams import LocalAtomicStream, S3MultipartStream

        location = parse_uri(uri)
        if location.scheme == "s3":
            return S3MultipartStream(self.client, location.bucket, location.key, part_size)
        return LocalAtomicStream(location.key)

    def upload_file(self, path: str, dest_uri: str) -> None:
        """Upload a local file (multipart on S3 for large files)."""
        dst = parse_uri(dest_uri)
        if dst.scheme == "file":
            Path(dst.key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dst.key)
            return
        self.client.upload_file(path, dst.bucket, dst.key)

    def download_file(self, source_uri: str, path: str) -> None:
        """Download an object to a local file."""
        src = parse_uri(source_uri)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if src.scheme == "file":
            shutil.copyfile(src.key, path)
            return
        self.client.download_file(src.bucket, src.key, path)

    # ----------------------------------------------------------------------------------------------
    # datasets: Delta tables and exports (the formats live in airflow_provider_mlops.datasets)
    # ----------------------------------------------------------------------------------------------
    def is_table(self, uri: str) -> bool:
        """Whether a Delta table is committed at ``uri`` (one listing of its ``_delta_log/``)."""
        from airflow_provider_mlops.datasets.delta import has_commit

        return has_commit(self, uri)

    def iter_batches(
        self,
        uri: str,
        *,
        format: DatasetFormat = "parquet",
        batch_size: int = 50_000,
        columns: list[str] | None = None,
        schema: pa.Schema | None = None,
        version: int | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """
        Stream the committed dataset at ``uri`` (a Delta table, or plain files there) as record batches.

        A Delta table is read at its latest committed version, or at ``version`` (also written
        ``uri@v12``). A URI without a table is read as plain files (names starting with ``_`` or
        ``.`` are skipped); nothing there raises
        :class:`~airflow_provider_mlops.datasets.NoCommittedDatasetError`, never 0 rows.

        :param uri: a table, a file or a prefix (``s3://...``, ``file://...`` or a local path).
        :param format: ``parquet``, ``csv`` or ``jsonl`` (JSON Lines) for plain files.
        :param batch_size: the largest number of rows a batch holds.
        :param columns: read only these columns.
        :param schema: the schema to read plain files with (otherwise inferred from the first file);
            for a table, the schema to cast to.
        :param version: the table version to read (time travel).
        """
        from airflow_provider_mlops.datasets import delta, files
        from airflow_provider_mlops.datasets.errors import FORMATS

        if format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
        base, pinned = delta.split_version(uri, version)
        if pinned is not None or self.is_table(base):
            return delta.iter_table(
                self, base, version=pinned, batch_size=batch_size, columns=columns, schema=schema
            )
        return files.iter_files(
            self, uri, format=format, batch_size=batch_size, columns=columns, schema=schema
        )

    def dataset_info(self, uri: str) -> dict[str, Any] | None:
        """
        The committed version of the table at ``uri`` (``@vN`` for an older one) as a small summary:
        ``uri``, ``version``, ``rows``, ``bytes``, ``files``, ``schema``, ``schema_fingerprint``,
        ``partition_by``, ``committed_at``, ``metadata``; None when nothing is committed there.
        """
        from airflow_provider_mlops.datasets import delta
        from airflow_provider_mlops.datasets.errors import NoCommittedDatasetError

        base, pinned = delta.split_version(uri)
        if pinned is None and not self.is_table(base):
            return None
        try:
            # the log read with the data files' file system: no boto3 client for a read (~14 MB)
            fs, _ = self.filesystem(base)
            return delta.describe(self, base, delta.open_table(self, base, version=pinned), fs=fs)
        except NoCommittedDatasetError:
            return None

    def read_schema(self, uri: str) -> pa.Schema | None:
        """The exact Arrow schema of the committed table (None when there is none)."""
        from airflow_provider_mlops.datasets import delta

        base, pinned = delta.split_version(uri)
        if pinned is None and not self.is_table(base):
            return None
        fs, _ = self.filesystem(base)
        return delta.table_schema(self, base, delta.open_table(self, base, version=pinned), fs=fs)

    def table_version(self, uri: str) -> int:
        """The latest committed version of the Delta table at ``uri``."""
        from airflow_provider_mlops.datasets import delta

        return delta.current_version(self, uri)

    def write_dataset(
        self,
        uri: str,
        batches: Iterable[pa.RecordBatch],
        *,
        format: DatasetFormat = "parquet",
        schema: pa.Schema | None = None,
        compression: str | None = "zstd",
        metadata: dict[str, Any] | None = None,
        before_commit: Callable[[PendingVersion], None] | None = None,
        type_conflict: str = "error",
        mode: str = "overwrite",
        predicate: str | None = None,
        partition_by: list[str] | None = None,
        target_file_size: int | None = None,
        max_rows_per_file: int = 1_000_000,
    ) -> dict[str, Any]:
        """
        Write batches as a new committed version of the dataset at ``uri``.

        ``parquet``: one commit to the Delta table at ``uri`` (created when missing). By default the
        write replaces the table (a task replaces its own output, so a retry converges to one clean
        result); ``mode="append"`` adds rows, ``predicate`` with ``overwrite`` replaces the rows it
        selects (a partition). The previous version stays readable until the commit, and after it by
        version. ``csv`` / ``jsonl``: one export file (see
        :func:`~airflow_provider_mlops.datasets.files.write_export`).

        :param before_commit: called with the pending version (``rows``, ``schema``) before the commit;
            raising commits nothing.
        :param type_conflict: ``string`` when the source turned a field of conflicting types into text.
        :param max_rows_per_file: rows per data file of a hand-off (an export is always one file).
        :return: ``uri``, ``version``, ``rows``, ``bytes``, ``files``, ``schema_fingerprint``, ``schema``,
            ``format`` and ``metadata`` of the committed version.
        """
        from airflow_provider_mlops.datasets import delta, files

        if format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
        if format != "parquet":
            return files.write_export(self, uri, batches, format=format, schema=schema)
        return delta.write_table(
            self,
            uri,
            batches,
            schema=schema,
            mode=mode,
            predicate=predicate,
            partition_by=partition_by,
            metadata=metadata,
            before_commit=before_commit,
            type_conflict=type_conflict,
            compression=compression,
            target_file_size=target_file_size,
            max_rows_per_file=max_rows_per_file,
        )

    def merge_dataset(
        self,
        uri: str,
        batches: Iterable[pa.RecordBatch],
        *,
        keys: list[str],
        schema: pa.Schema | None = None,
        partition_by: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Upsert into the Delta table at ``uri`` by ``keys`` (see :func:`~airflow_provider_mlops.datasets.delta.merge_table`)."""
        from airflow_provider_mlops.datasets import delta

        return delta.merge_table(
            self, uri, batches, keys=keys, schema=schema, partition_by=partition_by, metadata=metadata
        )

    def write(
        self,
        spec: SinkSpec,
        batches: Iterable[pa.RecordBatch],
        *,
        mode: str | None = None,
        partition: Mapping[str, Any] | None = None,
        on_empty: str = "skip",
        schema: pa.Schema | None = None,
    ) -> dict[str, Any]:
        """
        Write a :class:`~airflow_provider_mlops.sinks.LakeTable` (one commit to the Delta table,
        then the maintenance it asks for) or a :class:`~airflow_provider_mlops.sinks.FileExport`
        (one export file, replaced whole).

        :param mode: one of the sink's modes (the lake: default ``replace``, ``upsert`` with the
            spec's ``keys``; an export: ``replace``).
        :param partition: column -> value of ``replace_partition``: the rows it selects are
            replaced in one commit, and every written row must belong to it.
        :param on_empty: unused (the caller decides an empty input; what is written is what comes).
        :param schema: the input's schema (an empty input still writes a table with its columns).
        :return: ``rows``, ``files``, ``bytes`` and ``target``; the lake adds ``table_rows``,
            ``version``, ``inserted`` / ``updated`` (upsert), ``optimized_files``, ``vacuumed_files``.
        """
        from airflow_provider_mlops.sinks.specs import FileExport, LakeTable

        if isinstance(spec, FileExport):
            spec.check_mode(mode, partition)
            exported = self.write_dataset(spec.name, batches, format=spec.format, schema=schema)
            return {
                "rows": exported["rows"],
                "files": len(exported["files"]),
                "bytes": exported["bytes"],
                "target": exported["uri"],
            }
        if not isinstance(spec, LakeTable):
            raise ValueError(
                f"{type(self).__name__} writes files: give sink=LakeTable(...) or FileExport(...), "
                f"not {type(spec).__name__}"
            )
        from airflow_provider_mlops.datasets import delta

        mode = spec.check_mode(mode, partition)
        uri, partition_by = spec.name, list(spec.partition_by) if spec.partition_by else None
        if mode == "upsert":
            result = self.merge_dataset(
                uri, batches, keys=spec.upsert_keys or [], schema=schema, partition_by=partition_by
            )
        elif mode == "replace_partition":
            rows = dict(partition or {})
            result = self.write_dataset(
                uri,
                delta.rows_in_partition(batches, rows),
                schema=schema,
                mode="overwrite",
                predicate=delta.partition_predicate(rows),
                partition_by=partition_by,
            )
        else:
            overwrite = "append" if mode == "append" else "overwrite"
            result = self.write_dataset(
                uri, batches, schema=schema, mode=overwrite, partition_by=partition_by
            )
        counts: dict[str, Any] = {
            "rows": result["rows_written"],
            "table_rows": result["rows"],
            "version": result["version"],
            "files": len(result["files"]),
            "bytes": result["bytes"],
        }
        for key in ("inserted", "updated"):
            if key in result:
                counts[key] = result[key]
        # Maintenance after the data commit is best effort: a failure here must not fail the task,
        # whose retry would append the committed rows again; it is logged and returned, and the next
        # run (or a maintenance task) does it.
        try:
            if spec.optimize:
                metrics = self.optimize_dataset(uri)
                counts["optimized_files"] = int(metrics.get("numFilesRemoved", 0))
                counts["version"] = self.table_version(uri)
            if spec.vacuum_retention_hours is not None:
                removed = self.vacuum_dataset(uri, retention_hours=spec.vacuum_retention_hours)
                counts["vacuumed_files"] = len(removed)
        except Exception as err:
            self.log.warning(
                "%s: the rows are committed (version %s); maintenance failed: %s", uri, counts["version"], err
            )
            counts["maintenance_error"] = f"{type(err).__name__}: {err}"
        return {**counts, "target": uri}

    def vacuum_dataset(self, uri: str, *, retention_hours: float = 168.0, dry_run: bool = False) -> list[str]:
        """Remove files no version within ``retention_hours`` needs (see :func:`~airflow_provider_mlops.datasets.delta.vacuum`)."""
        from airflow_provider_mlops.datasets import delta

        return delta.vacuum(self, uri, retention_hours=retention_hours, dry_run=dry_run)

    def optimize_dataset(self, uri: str, *, target_size: int | None = None) -> dict[str, Any]:
        """Compact the table's small files (see :func:`~airflow_provider_mlops.datasets.delta.optimize`)."""
        from airflow_provider_mlops.datasets import delta

        return delta.optimize(self, uri, target_size=target_size)


def storage_hook(storage_conn_id: str | None = None) -> ObjectStorageHook:
    """The storage hook for dataset URIs: ``storage_conn_id``, else ``[mlops] storage_conn_id``."""
    from airflow_provider_mlops.utils.staging import default_storage_conn_id

    return ObjectStorageHook(aws_conn_id=storage_conn_id or default_storage_conn_id())
