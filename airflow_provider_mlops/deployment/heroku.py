"""
Heroku as a deployment target, through the Platform API (https://devcenter.heroku.com/articles/platform-api-reference).

The app runs the provider's model server from source with the Python buildpack: the source is a
small tarball (``Procfile``, ``requirements.txt`` naming the provider with its ``ml`` and ``s3``
extras, ``.python-version``), uploaded once per provider version (``POST /sources``, ``PUT`` to its
``put_url``, ``POST /apps/{app}/builds``, wait for ``succeeded``). The model is not in the slug: the
release's model name, version, file URI and pinned sha256 are config vars (``PATCH
/apps/{app}/config-vars``), so a new model version is one new release and the server code is built
only when it changes. Each config change restarts the dynos; the smoke test then polls the app's
``/version`` until it reports the release (and posts ``smoke_input`` to ``/invocations``).

Rollback sets the previous release's config vars back; with no previous release it scales the
``web`` dynos to 0 rather than leave an unpromoted model answering.

Credentials: an Airflow ``http`` connection whose password is a Heroku API key (host defaults to
``https://api.heroku.com``). Not run against the live Heroku API: tested against a local fake of the
documented endpoints (tests/deployment/test_heroku.py).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import tarfile
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.deployment.sagemaker import ENV_SHA256, ENV_VERSION, release_environment
from airflow_provider_mlops.deployment.targets import (
    DeploymentError,
    DeploymentTarget,
    ModelRelease,
    check_smoke_answer,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

API = "https://api.heroku.com"


def procfile() -> str:
    """The Procfile shipped beside the server image (airflow_provider_mlops/serving/container)."""
    from importlib import resources

    return (resources.files("airflow_provider_mlops.serving") / "container" / "Procfile").read_text()


def source_files(requirement: str, python_version: str = "3.11") -> dict[str, bytes]:
    """The files of the app's source: what the Python buildpack needs to run the server."""
    return {
        "Procfile": procfile().encode(),
        "requirements.txt": f"{requirement}\n".encode(),
        ".python-version": f"{python_version}\n".encode(),
    }


def source_tarball(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0  # reproducible: the same files give the same bytes
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


class HerokuTarget(DeploymentTarget):
    """
    A Heroku app serving the model with this provider's server.

    :param app: the Heroku app name (it must exist; the target does not create or delete apps).
    :param http_conn_id: an ``http`` connection: password = API key; host = API URL (optional).
    :param requirement: the pip requirement the app installs (default: this provider's version with
        the ``ml`` and ``s3`` extras).
    :param python_version: the buildpack's Python version.
    :param config: extra config vars (e.g. ``MLOPS_SERVE_STORAGE_CONN_ID`` plus its connection URI,
        AWS keys for the model bucket: these are the app's credentials, set by you).
    :param smoke_input: a JSON body for ``/invocations``; one prediction a row is required.
    :param wait_timeout: seconds to wait for a build, a release or the app to serve the version.
    :param poll_interval: seconds between polls.
    :param label: the name in logs and XCom.
    """

    def __init__(
        self,
        *,
        app: str,
        http_conn_id: str = "heroku_default",
        requirement: str | None = None,
        python_version: str = "3.11",
        config: Mapping[str, str] | None = None,
        smoke_input: Mapping[str, Any] | None = None,
        wait_timeout: float = 900.0,
        poll_interval: float = 5.0,
        label: str | None = None,
    ) -> None:
        self.app = app
        self.http_conn_id = http_conn_id
        self.requirement = requirement
        self.python_version = python_version
        self.config = dict(config or {})
        self.smoke_input = dict(smoke_input) if smoke_input else None
        self.wait_timeout = wait_timeout
        self.poll_interval = poll_interval
        self.label = label or f"heroku:{app}"
        self._session: Any = None
        self._api = API

    # ----------------------------------------------------------------------------------------------
    # HTTP
    # ----------------------------------------------------------------------------------------------
    def _http(self) -> Any:
        if self._session is None:
            import requests
            from airflow.providers.common.compat.sdk import BaseHook

            conn = BaseHook.get_connection(self.http_conn_id)
            if not conn.password:
                raise DeploymentError(f"Connection {self.http_conn_id!r} has no Heroku API key (password)")
            host = (conn.host or "").rstrip("/")
            if host and "://" not in host:
                host = f"{conn.schema or 'https'}://{host}"
            if host and conn.port:
                host = f"{host}:{conn.port}"
            self._api = host or API
            session = requests.Session()
            session.headers.update(
                {
                    "Accept": "application/vnd.heroku+json; version=3",
                    "Authorization": f"Bearer {conn.password}",
                    "User-Agent": "airflow-provider-mlops",
                }
            )
            self._session = session
        return self._session

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        session = self._http()
        response = session.request(method, f"{self._api}{path}", timeout=60, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("message") or response.text
            except ValueError:
                detail = response.text
            raise DeploymentError(f"{self.label}: {method} {path} -> {response.status_code}: {detail[:500]}")
        return response.json() if response.content else None

    def _wait(self, what: str, poll: Any) -> Any:
        deadline = time.monotonic() + self.wait_timeout
        while True:
            done = poll()
            if done is not None:
                return done
            if time.monotonic() > deadline:
                raise DeploymentError(f"{self.label}: {what} not done after {self.wait_timeout:.0f} s")
            time.sleep(self.poll_interval)

    # ----------------------------------------------------------------------------------------------
    # build
    # ----------------------------------------------------------------------------------------------
    def _requirement(self) -> str:
        if self.requirement:
            return self.requirement
        from airflow_provider_mlops import __version__

        return f"airflow-provider-mlops[ml,s3]=={__version__}"

    def _ensure_build(self) -> str:
        """Build the server's source unless a build of the same source already succeeded."""
        files = source_files(self._requirement(), self.python_version)
        digest = hashlib.sha256(source_tarball(files)).hexdigest()[:12]
        version = f"mlops-serve-{digest}"
        for build in self._call("GET", f"/apps/{self.app}/builds") or []:
            if (
                build.get("status") == "succeeded"
                and (build.get("source_blob") or {}).get("version") == version
            ):
                return str(build["id"])
        source = self._call("POST", "/sources")["source_blob"]
        import requests

        # The put_url is a presigned object-store URL: no API credentials, and no content type.
        upload = requests.put(
            source["put_url"], data=source_tarball(files), headers={"Content-Type": ""}, timeout=120
        )
        if upload.status_code >= 400:
            raise DeploymentError(f"{self.label}: uploading the source failed: {upload.status_code}")
        build = self._call(
            "POST",
            f"/apps/{self.app}/builds",
            json={"source_blob": {"url": source["get_url"], "version": version}},
        )
        build_id = str(build["id"])
        log.info("%s: building %s (build %s)", self.label, version, build_id)

        def finished() -> Any:
            state = self._call("GET", f"/apps/{self.app}/builds/{build_id}")
            if state.get("status") == "pending":
                return None
            return state

        result = self._wait(f"build {build_id}", finished)
        if result.get("status") != "succeeded":
            raise DeploymentError(
                f"{self.label}: build {build_id} {result.get('status')}: {self._build_log(result)}"
            )
        return build_id

    def _build_log(self, build: dict[str, Any]) -> str:
        url = build.get("output_stream_url")
        if not url:
            return "no build output"
        import requests

        try:
            return requests.get(url, timeout=30).text[-1500:]
        except requests.RequestException as err:
            return f"build output unavailable ({err})"

    # ----------------------------------------------------------------------------------------------
    # releases
    # ----------------------------------------------------------------------------------------------
    def _latest_release(self) -> dict[str, Any]:
        releases = self._call(
            "GET", f"/apps/{self.app}/releases", headers={"Range": "version ..; order=desc, max=1"}
        )
        if not releases:
            raise DeploymentError(f"{self.label}: the app has no release")
        return dict(releases[0])

    def _set_config(self, values: Mapping[str, str | None]) -> dict[str, Any]:
        self._call("PATCH", f"/apps/{self.app}/config-vars", json=dict(values))
        release = self._latest_release()
        number = release["version"]

        def settled() -> Any:
            state = self._call("GET", f"/apps/{self.app}/releases/{number}")
            return None if state.get("status") == "pending" else state

        state = self._wait(f"release v{number}", settled)
        if state.get("status") != "succeeded":
            raise DeploymentError(
                f"{self.label}: release v{number} {state.get('status')}: {state.get('description')}"
            )
        return dict(state)

    def _web_url(self) -> str:
        return str(self._call("GET", f"/apps/{self.app}")["web_url"]).rstrip("/")

    # ----------------------------------------------------------------------------------------------
    # DeploymentTarget
    # ----------------------------------------------------------------------------------------------
    def deploy(self, release: ModelRelease) -> dict[str, Any]:
        build = self._ensure_build()
        current = self._call("GET", f"/apps/{self.app}/config-vars") or {}
        wanted = {**self.config, **release_environment(release)}
        state: dict[str, Any] = {}
        if any(current.get(k) != v for k, v in wanted.items()):
            state = self._set_config(wanted)
        self._call("PATCH", f"/apps/{self.app}/formation/web", json={"quantity": 1})
        return {"app": self.app, "build": build, "release": state.get("version")}

    def describe(self) -> dict[str, Any]:
        config = self._call("GET", f"/apps/{self.app}/config-vars") or {}
        return {"version": config.get(ENV_VERSION), "sha256": config.get(ENV_SHA256), "app": self.app}

    def smoke_test(self, release: ModelRelease) -> None:
        import requests

        url = self._web_url()
        seen: dict[str, Any] = {}

        def serving() -> Any:
            # The dynos restart after a config change: wait until the app reports the release.
            try:
                answer = requests.get(f"{url}/version", timeout=10)
                if answer.status_code == 200:
                    seen.update(answer.json())
            except requests.RequestException:
                return None
            if str(seen.get("version")) == release.version and seen.get("sha256") == release.sha256:
                return seen
            return None

        try:
            self._wait(f"{url} serving v{release.version}", serving)
        except DeploymentError as err:
            raise DeploymentError(f"{err}; it last reported {seen or 'nothing'}") from None
        if self.smoke_input:
            answer = requests.post(f"{url}/invocations", json=self.smoke_input, timeout=60)
            body = (
                answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
            )
            predictions = body.get("predictions") if isinstance(body, dict) else None
            check_smoke_answer(
                self.label,
                self.smoke_input,
                predictions,
                f"{answer.status_code}: {answer.text[:300]}",
                ok=answer.status_code == 200,
            )

    def rollback(self, previous: ModelRelease | None) -> None:
        if previous is not None:
            self._set_config({**self.config, **release_environment(previous)})
            return
        self._call("PATCH", f"/apps/{self.app}/formation/web", json={"quantity": 0})
        log.warning("%s: no previous version; scaled the web dynos to 0", self.label)
