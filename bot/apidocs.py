"""``/docs`` (Swagger UI) and ``/redoc`` without internet (SPEC §12): their scripts come from the wheel.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so offline (or behind a strict proxy)
``/docs`` is a blank page. The files here are the ones the ``fastapi-offline`` package ships
(Swagger UI 5, which reads OpenAPI 3.1, and ReDoc 2), served from ``/docs-static``; only those
files are used, not its app factory, so the app stays ours.
"""

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = "/docs-static"
docs = APIRouter(include_in_schema=False)


@docs.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(openapi_url=f"{root}{request.app.openapi_url}", title=f"{request.app.title} API",
                               oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
                               swagger_js_url=f"{root}{STATIC}/swagger-ui-bundle.js",
                               swagger_css_url=f"{root}{STATIC}/swagger-ui.css",
                               swagger_favicon_url=f"{root}{STATIC}/favicon.png")


@docs.get("/docs/oauth2-redirect")
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@docs.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_redoc_html(openapi_url=f"{root}{request.app.openapi_url}", title=f"{request.app.title} API",
                          redoc_js_url=f"{root}{STATIC}/redoc.standalone.js",
                          redoc_favicon_url=f"{root}{STATIC}/favicon.png", with_google_fonts=False)


def mount_docs(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and their files; the app must be made with ``docs_url=None, redoc_url=None``."""
    app.include_router(docs)
    app.mount(STATIC, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-static")
