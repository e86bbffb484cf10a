"""Error answers: declared on every route with one body model, and shown as pages to browsers."""

from __future__ import annotations

from .conftest import Site

DECLARED = ("401", "403", "404", "422", "503")
HTML = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_every_route_declares_the_error_answers_with_the_error_body(site: Site) -> None:
    spec = site.client.get("/openapi.json").json()
    operations = [
        (path, method, op) for path, item in spec["paths"].items() for method, op in item.items()
    ]
    assert len(operations) >= 8
    public = {"/healthz"}  # no credential: no 401/403
    for path, method, op in operations:
        for code in DECLARED:
            if path in public and code in ("401", "403"):
                continue
            assert code in op["responses"], f"{method} {path} lacks {code}"
            schema = op["responses"][code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, code)
    error = spec["components"]["schemas"]["ErrorOut"]
    assert set(error["required"]) == {"error", "detail"}


def test_a_malformed_request_answers_the_declared_error_body(site: Site) -> None:
    response = site.client.post("/api/v1/controllable-units", json={"name": 5})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "InvalidInput"
    assert body["detail"].startswith("body.")
    assert body["errors"] and {"loc", "msg"} <= set(body["errors"][0])


def test_unknown_report_version_is_a_page_for_a_browser_and_json_for_a_client(
    site: Site,
) -> None:
    page = site.client.get("/compliance-report-versions/999999/obligation", headers=HTML)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in page.text and 'href="/"' in page.text
    api = site.client.get("/api/v1/compliance-report-versions/999999/invoice", headers=HTML)
    assert api.status_code == 404 and api.json()["error"] == "InvoiceNotFound"  # /api/ stays JSON


def test_first_read_during_an_outage_is_a_page_saying_what_to_do(site: Site) -> None:
    never_read = site.versions[1]  # its invoice was never copied, and e-licensing is down
    page = site.client.get(f"/compliance-report-versions/{never_read}/obligation", headers=HTML)
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>" in page.text and "unavailable" in page.text  # a page, saying why


def test_an_unknown_page_is_a_page(site: Site) -> None:
    page = site.client.get("/no-such-page", headers=HTML)
    assert page.status_code == 404 and "<h1>Not found</h1>" in page.text
    assert site.client.get("/no-such-page").json()["detail"] == "Not Found"
