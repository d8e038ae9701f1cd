"""Paths of the committed fixtures the Python tests read (the same stores and catalogs the
Rust tests compare against xarray and intake-esm)."""

import pathlib

import pytest

CRATES = pathlib.Path(__file__).resolve().parents[2]
DATASET_FIXTURES = CRATES / "gridflow-dataset" / "tests" / "fixtures"
STORE_FIXTURES = CRATES / "gridflow-store" / "tests" / "fixtures"
CATALOG_FIXTURES = CRATES / "gridflow-catalog" / "tests" / "fixtures"
CLI_EXPECTED = CRATES / "gridflow-cli" / "tests" / "fixtures" / "expected.json"


@pytest.fixture(autouse=True)
def _no_default_client():
    """Each test starts (and ends) computing locally, whatever a failed test left."""
    from gridflow import _gridflow

    _gridflow.set_default_client(None)
    yield
    _gridflow.set_default_client(None)
