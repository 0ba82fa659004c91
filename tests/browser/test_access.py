"""Sign-in in a real browser against a read-protected registry (``secured_portal``): a page
redirects to the form, a wrong token is refused with a message, the right one lands on the
page asked for with a sealed HttpOnly SameSite=Strict cookie; signing out, and revoking the
token through the API, end the session at once."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.browser.portal import PortalMesh, axe_violations

WANTED = "/ui/products?q=revenue&domain=analytics"


def _path(page: Any) -> str:
    parts = urlsplit(page.url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _submit_token(page: Any, token: str) -> Any:
    page.fill("#token", token)
    with page.expect_navigation() as navigation:
        page.click("form[action='/ui/login'] button[type=submit]")
    return navigation.value


def test_a_protected_page_asks_for_a_token_refuses_a_wrong_one_and_lands_after(
    secured_portal: PortalMesh, page: Any
) -> None:
    page.goto(f"{secured_portal.url}{WANTED}")
    assert urlsplit(page.url).path == "/ui/login"
    assert parse_qs(urlsplit(page.url).query)["next"] == [WANTED]
    assert page.locator("h1").inner_text() == "Sign in"
    assert axe_violations(page) == []

    refused = _submit_token(page, "not-a-registry-token")
    assert refused.status == 401
    alert = page.locator("[role=alert]")
    assert "That token was refused" in alert.inner_text()
    assert urlsplit(page.url).path == "/ui/login"
    assert {c["name"] for c in page.context.cookies()} == {"mesh_csrf"}

    _submit_token(page, secured_portal.token("analytics"))
    assert _path(page) == WANTED
    assert "Signed in as analytics" in page.locator("header").inner_text()
    [session] = [c for c in page.context.cookies() if c["name"] == "mesh_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["path"] == "/ui"
    assert secured_portal.token("analytics") not in session["value"]
    # the cookie is not readable from the page's scripts
    assert "mesh_session" not in page.evaluate("document.cookie")

    with page.expect_navigation():
        page.click("form[action='/ui/logout'] button[type=submit]")
    assert urlsplit(page.url).path == "/ui/login"
    assert all(c["name"] != "mesh_session" for c in page.context.cookies())
    page.goto(f"{secured_portal.url}/ui/domains")
    assert urlsplit(page.url).path == "/ui/login"


def test_an_open_redirect_in_next_lands_inside_the_portal(
    secured_portal: PortalMesh, page: Any
) -> None:
    page.goto(f"{secured_portal.url}/ui/login?next=//example.com/ui/products")
    _submit_token(page, secured_portal.token("orders"))
    assert page.url == f"{secured_portal.url}/ui/products"


def test_revoking_the_token_ends_the_browser_session_at_once(
    secured_portal: PortalMesh, page: Any
) -> None:
    principal = f"audit{uuid.uuid4().hex[:6]}"
    admin = ("admin", secured_portal.token("admin"))
    with httpx.Client(base_url=secured_portal.url, timeout=30.0) as api:
        issued = api.post(f"/admin/credentials/{principal}", auth=admin)
        assert issued.status_code == 201, issued.text
        token = issued.json()["token"]
        page.goto(f"{secured_portal.url}/ui/login?next=/ui/domains")
        _submit_token(page, token)
        assert urlsplit(page.url).path == "/ui/domains"
        assert f"Signed in as {principal}" in page.locator("header").inner_text()

        revoked = api.delete(f"/admin/credentials/{principal}", auth=admin)
        assert revoked.status_code == 200, revoked.text
    page.reload()
    assert urlsplit(page.url).path == "/ui/login"
    assert parse_qs(urlsplit(page.url).query)["next"] == ["/ui/domains"]
    assert all(c["name"] != "mesh_session" for c in page.context.cookies())
    refused = _submit_token(page, token)
    assert refused.status == 401
    assert "revoked" in page.locator("[role=alert]").inner_text()
