"""/docs and /redoc work without internet: every script, stylesheet and icon they name is served by the app."""

import re

import pytest

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']|spec-url=["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_name_only_files_the_app_serves(web, page):
    res = web.get(page)
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/html")
    assert "//" not in re.sub(r"<!--.*?-->", "", res.text, flags=re.S).replace("://", "")  # no host named at all
    named = {next(g for g in m.groups() if g) for m in ASSET.finditer(res.text)}
    assert "/openapi.json" in named
    assert any(u.endswith(".js") for u in named)
    for url in named:
        assert url.startswith("/"), url  # on this server
        asset = web.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0
        if url.endswith(".js"):
            assert "javascript" in asset.headers["content-type"]
            assert len(asset.content) > 500_000  # the real bundle, not a stub that loads it from elsewhere


def test_swagger_ui_is_one_that_reads_openapi_3_1(web):
    assert web.get("/openapi.json").json()["openapi"].startswith("3.1")
    bundle = web.get("/static/apidocs/swagger-ui-bundle.js").text
    assert re.search(r'"5\.\d+\.\d+"', bundle)  # Swagger UI 4 shows "Unable to render this definition" for 3.1
