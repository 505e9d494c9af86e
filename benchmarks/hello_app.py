"""A bare FastAPI app, the baseline of ``bench_api_load.py``: one ``GET /hello``.

Served exactly like the real service (same uvicorn, workers, loop and http options), so the
ratio route/hello measures what geo_router adds on top of the framework.
"""

from __future__ import annotations

from fastapi import FastAPI


def create_app() -> FastAPI:
    """The baseline app (a factory, like ``api.main:create_app_from_env``)."""
    app = FastAPI(title="hello", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


app = create_app()
