"""mask_secret: Airflow's log masker found through the compat shim on every minor, or a clear error."""

from __future__ import annotations

import sys
import types

import pytest

from airflow_provider_mlops.utils.secrets import mask_secret

pytestmark = pytest.mark.unit


def test_a_secret_reaches_airflows_masker(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow.providers.common.compat.sdk as compat

    seen: list[tuple[object, object]] = []
    monkeypatch.setattr(
        compat, "mask_secret", lambda secret, name=None: seen.append((secret, name)), raising=False
    )
    mask_secret("s3cr3t", "password")
    mask_secret("")  # nothing to mask: Airflow is not asked
    assert seen == [("s3cr3t", "password")]


def test_a_common_compat_without_mask_secret_names_the_version_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A constraints file (or --no-deps) that kept common-compat older than 1.22.0: its shim has no mask_secret.
    old = types.ModuleType("airflow.providers.common.compat.sdk")
    monkeypatch.setitem(sys.modules, "airflow.providers.common.compat.sdk", old)
    with pytest.raises(ImportError, match=r"apache-airflow-providers-common-compat>=1\.22\.0"):
        mask_secret("s3cr3t")
