"""
What a connection made in Airflow's form saves, read by the hooks: no server needed.

The browser test (tests/integration/test_connection_ui.py) drives the real form; these pin the
rules it found, quickly: the form's false toggles, masked field names, messages without Airflow's
temporary connection id, connection-type names without "_".
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from airflow_provider_mlops.get_provider_info import CONN_TYPES, LEGACY_CONN_TYPES, get_provider_info
from airflow_provider_mlops.hooks.http import HttpApiHook
from airflow_provider_mlops.hooks.mongo import MongoBatchHook
from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
from tests.conftest import set_connection

pytestmark = pytest.mark.unit

# Exactly what Airflow 3.3.2's form saves for a MongoDB connection when the person only fills host,
# port, login, password, database and turns on "Direct connection" (every toggle is saved).
MONGO_FORM_EXTRA = {
    "srv": False,
    "tls": False,
    "tlsAllowInvalidCertificates": False,
    "directConnection": True,
    "serverSelectionTimeoutMS": 10000,
}


def test_a_form_made_mongo_connection_passes_no_tls_option_pymongo_refuses() -> None:
    from pymongo import MongoClient

    conn_id = set_connection(
        "form_mongo", conn_type="mlops-mongo", host="127.0.0.1", port=1, schema="db", extra=MONGO_FORM_EXTRA
    )
    hook = MongoBatchHook(conn_id)
    options = hook._client_options()
    assert not {k for k in options if k.lower().startswith("tls")}, options
    assert options["directConnection"] is True
    # pymongo validates options when the client is built (it connects in the background, lazily).
    MongoClient(hook.get_uri(), connect=False, **options).close()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"tls": True, "tlsAllowInvalidCertificates": False}, {"tls": True}),
        (
            {"tls": True, "tlsAllowInvalidCertificates": True},
            {"tls": True, "tlsAllowInvalidCertificates": True},
        ),
        ({"tls": "false", "tlsCAFile": ""}, {}),
        ({"srv": True, "tls": False, "directConnection": False}, {}),
    ],
)
def test_only_true_tls_toggles_reach_pymongo(extra: dict, expected: dict) -> None:
    options = MongoBatchHook(set_connection("form_mongo_tls", conn_type="mlops-mongo", host="h", extra=extra))
    got = {
        k: v for k, v in options._client_options().items() if k.startswith("tls") or k == "directConnection"
    }
    assert got == expected


def test_invalid_mongo_settings_are_reported_without_the_temporary_connection_id() -> None:
    conn_id = set_connection(
        "LPuPtxOc", conn_type="mlops-mongo", host="h", extra={"authMechanism": "NOT-A-MECHANISM"}
    )
    ok, message = MongoBatchHook(conn_id).test_connection()
    assert not ok
    assert "LPuPtxOc" not in message
    assert message.startswith("Invalid MongoDB connection settings")
    with pytest.raises(ConnectionError, match="LPuPtxOc"):  # task logs do name the connection
        MongoBatchHook(conn_id).get_conn()


@pytest.mark.parametrize(
    ("extra", "location", "name"),
    [
        ({"auth_type": "api_key", "key_name": "X-Key", "key_location": "query"}, "query", "X-Key"),
        ({"auth_type": "api_key", "key_name": "X-Key", "key_location": "header"}, "header", "X-Key"),
        # the old names, as existing connections have them
        ({"auth_type": "api_key", "api_key_name": "X-Old", "api_key_in": "query"}, "query", "X-Old"),
        ({"api_key_name": "X-Old"}, "header", "X-Old"),
        ({"key_name": "X-New"}, "header", "X-New"),
    ],
)
def test_api_key_fields_new_and_old_names(extra: dict, location: str, name: str) -> None:
    conn_id = set_connection(
        "form_http_key", conn_type="mlops-http", host="http://127.0.0.1:1", password="k-123456", extra=extra
    )
    auth = HttpApiHook(conn_id).auth
    assert (auth.location, auth.name, auth.key) == (location, name, "k-123456")


def test_a_masked_api_key_location_is_refused_with_a_clear_message() -> None:
    # What the form saved before the field was renamed: Airflow masked the field's default.
    conn_id = set_connection(
        "LPuPtxOc",
        conn_type="mlops_http",
        host="http://127.0.0.1:1",
        password="k-123456",
        extra={"auth_type": "api_key", "api_key_name": "X-Key", "api_key_in": "***"},
    )
    with pytest.raises(ValueError, match=r"must be 'header' or 'query', got '\*\*\*'"):
        HttpApiHook(conn_id).auth
    ok, message = HttpApiHook(conn_id).test_connection()
    assert not ok
    assert message.startswith("Invalid auth settings: API key location")
    assert "LPuPtxOc" not in message and "k-123456" not in message


def test_http_without_base_url_says_so() -> None:
    ok, message = HttpApiHook(set_connection("LPuPtxOc", conn_type="mlops-http")).test_connection()
    assert (ok, message) == (False, "No base URL: fill in Base URL (e.g. https://api.example.com/v1)")


def test_s3_without_endpoint_names_the_aws_default_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import EndpointConnectionError

    hook = ObjectStorageHook(
        set_connection("LPuPtxOc", conn_type="mlops-s3", extra={"region_name": "eu-west-3"})
    )

    class Offline:  # no network in tests: the client fails as it would without a route to AWS
        def list_buckets(self) -> None:
            raise EndpointConnectionError(endpoint_url="https://s3.eu-west-3.amazonaws.com/")

    monkeypatch.setitem(hook.__dict__, "client", Offline())
    ok, message = hook.test_connection()
    assert not ok
    assert message.startswith("Cannot reach the AWS default S3 endpoint for region eu-west-3: ")
    assert "None" not in message and "LPuPtxOc" not in message


def test_connection_type_names_have_no_underscore_and_old_names_still_resolve() -> None:
    types = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}
    assert set(types) == set(CONN_TYPES.values()) | set(LEGACY_CONN_TYPES.values())
    for kind, name in CONN_TYPES.items():
        assert "_" not in name
        old = types[LEGACY_CONN_TYPES[kind]]
        assert old["conn-fields"] == types[name]["conn-fields"], "the same form under both names"
        assert old["hook-name"] != types[name]["hook-name"], "told apart in the type list"


def test_forms_declare_nothing_airflow_3_ignores_and_mask_nothing_by_accident() -> None:
    from tests.airflow_compat import should_hide_value_for_key as hide_rule

    should_hide_value_for_key = hide_rule()

    for conn in get_provider_info()["connection-types"]:
        behaviour = conn.get("ui-field-behaviour", {})
        # Airflow 3's form has no behaviour for Extra: hiding or relabeling it does nothing.
        assert "extra" not in behaviour.get("hidden-fields", []), conn["connection-type"]
        assert "extra" not in behaviour.get("relabeling", {}), conn["connection-type"]
        assert "extra" not in behaviour.get("placeholders", {}), conn["connection-type"]
        for name, field in conn.get("conn-fields", {}).items():
            if should_hide_value_for_key(name):
                # Airflow shows and saves such a field's value as "***": only secrets may be named so.
                assert field["schema"].get("format") == "password", (conn["connection-type"], name)


@pytest.mark.parametrize("dag_file", sorted((Path(__file__).parents[1] / "example_dags").glob("*.py")))
def test_dag_docs_are_markdown_not_sphinx(dag_file: Path) -> None:
    doc = ast.get_docstring(ast.parse(dag_file.read_text()))
    if doc is None:
        pytest.skip("no module docstring")
    # doc_md is rendered as Markdown in the UI: Sphinx roles and directives show up raw.
    assert not re.search(r":(class|func|meth|mod|ref|doc|attr):`", doc), dag_file.name
    assert not re.search(r"^\.\. \w+::", doc, re.MULTILINE), dag_file.name
