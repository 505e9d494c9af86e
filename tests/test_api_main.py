"""The uvicorn entry point: the app from the environment, the city loaded for serving."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from fastapi import FastAPI

from api.main import create_app_from_env, load_city_for_serving
from api.settings import AppSettings


def test_the_served_city_is_frozen_out_of_the_cyclic_gc(tmp_path: Path) -> None:
    before = gc.get_freeze_count()
    try:
        router, _geocoder = load_city_for_serving(AppSettings.of(data_dir=tmp_path, _env_file=None))
        assert router.snapshot.layers
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


def test_app_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEO_ROUTER_DATA_DIR", str(tmp_path))
    app = create_app_from_env()
    assert isinstance(app, FastAPI)
    assert app.state.settings.store.data_dir == tmp_path
