"""The portal's access rules over the in-process app: sign-in, sealed cookie, CSRF, redirects.

A probe page (``/ui/probe``, added here, taking ``viewer`` like every page) shows who the
portal thinks is looking, so these tests do not depend on any page family's templates; the
structural test at the end checks the real pages.
"""

from __future__ import annotations

import html
import re
import time
import warnings
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.routing import iter_route_contexts

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from mesh_stream.registry.portal.access import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    SessionSealer,
    ViewerDep,
    safe_next,
    viewer,
)
from mesh_stream.registry.service import InMemoryStore, create_app
from mesh_stream.registry.service.auth import Credentials
from mesh_stream.registry.service.edge import EdgeLimits
from mesh_stream.registry.service.forwarding import is_write
from tests.unit.registry.conftest import TOKENS

SECRET = "unit-test-session-secret"
HOSTILE_NEXT = [
    "//evil.com",
    "//evil.com/ui/products",
    "/\\evil.com",
    "/ui\\@evil.com",
    "\\\\evil.com",
    "https://evil.com",
    "https://evil.com/ui/products",
    "http:/ui/products",
    "javascript:alert(1)",
    "/ui@evil.com",
    "/uievil.com",
    "%2F%2Fevil.com",
    "%2f%2fevil.com/ui",
    "/%2F/evil.com",
    "/ui%2F%2Fevil.com",
    "/ui//evil.com",
    "/ui/%2F/evil.com",
    "/ui/../docs",
    "/ui/%2e%2e/docs",
    "/ui/%2E%2E%2Fdocs",
    "/ui/.",
    "/ui/\t/evil.com",
    "/ui/\r\nSet-Cookie: x=1",
    "/ui/%0d%0aSet-Cookie:%20x=1",
    " /ui/products",
    "/ui/products#@evil.com",
    "\uff0f\uff0fevil.com",  # fullwidth solidus twice
    "/ui/" + "x" * 3000,
    "",
]
PORTAL_PATHS = ["/ui", "/ui/products", "/ui/products?q=revenue&domain=analytics", "/ui/a%20b"]


def _app(*, read_auth: bool = True, failures: int = 20) -> FastAPI:
    app = create_app(
        InMemoryStore(),
        credentials=Credentials(TOKENS),
        read_requires_auth=read_auth,
        limits=EdgeLimits(auth_failures_per_minute=failures),
        session_secret=SECRET,
    )

    @app.get("/ui/probe", include_in_schema=False)
    async def probe(seen: ViewerDep) -> PlainTextResponse:
        return PlainTextResponse(f"principal={seen.principal} signed_in={seen.signed_in}")

    app.router.routes.insert(0, app.router.routes.pop())  # before the portal's 404 page
    return app


def _client(app: FastAPI, *, https: bool = False) -> TestClient:
    base = "https://testserver" if https else "http://testserver"
    return TestClient(app, base_url=base, raise_server_exceptions=False, follow_redirects=False)


def _form_token(client: TestClient, next_path: str | None = None) -> tuple[str, str]:
    """GET the sign-in form: (its CSRF token, its hidden ``next``)."""
    page = client.get("/ui/login", params={} if next_path is None else {"next": next_path})
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    kept = re.search(r'name="next" value="([^"]*)"', page.text)
    assert csrf, page.text
    assert kept, page.text
    return html.unescape(csrf.group(1)), html.unescape(kept.group(1))


def _sign_in(client: TestClient, token: str, next_path: str = "/ui/probe") -> Any:
    csrf, kept = _form_token(client, next_path)
    return client.post("/ui/login", data={"token": token, "csrf_token": csrf, "next": kept})


def _set_cookies(answer: Any) -> dict[str, str]:
    """Each Set-Cookie header of ``answer`` by cookie name (the whole header, lowercased)."""
    found = {}
    for header in answer.headers.get_list("set-cookie"):
        found[header.split("=", 1)[0]] = header.lower()
    return found


def test_a_page_without_a_credential_redirects_to_the_sign_in_form() -> None:
    client = _client(_app())
    answer = client.get("/ui/probe?q=a b&domain=x")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=%2Fui%2Fprobe%3Fq%3Da%2520b%26domain%3Dx"
    form = client.get(answer.headers["location"])
    assert form.status_code == 200
    assert 'name="next" value="/ui/probe?q=a%20b&amp;domain=x"' in form.text
    # the form and the static files answer without a credential
    assert client.get("/ui/static/portal.css").status_code == 200
    # htmx asks for fragments: a 401 telling htmx where to go, not a page to swap in
    partial = client.get("/ui/probe", headers={"HX-Request": "true"})
    assert partial.status_code == 401
    assert partial.headers["hx-redirect"] == "/ui/login?next=%2Fui%2Fproducts"
    shown = "http://testserver/ui/products?q=revenue"
    partial = client.get("/ui/probe", headers={"HX-Request": "true", "HX-Current-URL": shown})
    assert partial.headers["hx-redirect"] == "/ui/login?next=%2Fui%2Fproducts%3Fq%3Drevenue"
    for foreign in ("https://evil.com/x", "//evil.com", "http://[", "/ui/../docs"):
        partial = client.get("/ui/probe", headers={"HX-Request": "true", "HX-Current-URL": foreign})
        assert partial.headers["hx-redirect"] == "/ui/login?next=%2Fui%2Fproducts", foreign


def test_signing_in_lands_on_next_with_a_sealed_strict_cookie() -> None:
    client = _client(_app())
    landed = _sign_in(client, TOKENS["orders"], "/ui/probe?q=revenue")
    assert landed.status_code == 303
    assert landed.headers["location"] == "/ui/probe?q=revenue"
    cookies = _set_cookies(landed)
    session = cookies[SESSION_COOKIE]
    for part in ("httponly", "samesite=strict", "path=/ui", f"max-age={SESSION_SECONDS}"):
        assert part in session, session
    assert "secure" not in session  # plain http: a Secure cookie would never come back
    assert TOKENS["orders"] not in session  # sealed: the token is not readable in it
    assert "httponly" in cookies[CSRF_COOKIE]
    assert "samesite=strict" in cookies[CSRF_COOKIE]
    page = client.get("/ui/probe")
    assert page.status_code == 200
    assert page.text == "principal=orders signed_in=True"


def test_cookies_are_secure_under_https() -> None:
    client = _client(_app(), https=True)
    form = client.get("/ui/login")
    assert "secure" in _set_cookies(form)[CSRF_COOKIE]
    landed = _sign_in(client, TOKENS["orders"])
    assert landed.status_code == 303
    assert "secure" in _set_cookies(landed)[SESSION_COOKIE]
    assert client.get("/ui/probe").text == "principal=orders signed_in=True"


def test_a_wrong_token_is_refused_and_counts_as_a_failed_authentication() -> None:
    client = _client(_app(failures=3))
    for _ in range(3):
        refused = _sign_in(client, "not-a-token")
        assert refused.status_code == 401
        assert "That token was refused" in refused.text
        assert SESSION_COOKIE not in _set_cookies(refused)
        assert 'name="next" value="/ui/probe"' in refused.text  # the form keeps next
    blocked = _sign_in(client, TOKENS["orders"])  # even the right one, now
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    assert "too many failed authentications" in blocked.text
    assert "MESH_REGISTRY_AUTH_FAILURES_PER_MINUTE" in blocked.text
    assert SESSION_COOKIE not in _set_cookies(blocked)
    # the same count as the API's: its calls from this address are refused too
    api = client.get("/subjects", auth=("orders", TOKENS["orders"]))
    assert api.status_code == 429
    assert api.json()["error_code"] == 42901


def test_an_empty_token_asks_again_without_counting() -> None:
    client = _client(_app(failures=1))
    empty = _sign_in(client, "   ")
    assert empty.status_code == 400
    assert "Enter your token" in empty.text
    assert _sign_in(client, TOKENS["orders"]).status_code == 303


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_next_never_leaves_the_portal(target: str) -> None:
    assert safe_next(target) == "/ui/products"
    client = _client(_app())
    _, kept = _form_token(client, target)
    assert kept == "/ui/products"
    csrf, _ = _form_token(client)
    landed = client.post(
        "/ui/login", data={"token": TOKENS["orders"], "csrf_token": csrf, "next": target}
    )
    assert landed.status_code == 303
    assert landed.headers["location"] == "/ui/products"


@pytest.mark.parametrize("target", PORTAL_PATHS)
def test_next_keeps_a_portal_page(target: str) -> None:
    assert safe_next(target) == target
    client = _client(_app())
    landed = _sign_in(client, TOKENS["orders"], target)
    assert landed.headers["location"] == target


def _sealed_session(client: TestClient, value: str) -> None:
    client.cookies.set(SESSION_COOKIE, value, domain="testserver.local", path="/ui")


@pytest.mark.parametrize(
    "damage",
    ["tampered", "other secret", "expired", "garbage", "unicode", "huge"],
)
def test_a_bad_session_cookie_signs_out_never_500(damage: str) -> None:
    for read_auth in (True, False):
        app = _app(read_auth=read_auth, failures=1)
        client = _client(app)
        good = SessionSealer(SECRET).seal(TOKENS["orders"])
        value = {
            "tampered": good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB"),
            "other secret": SessionSealer("another-secret").seal(TOKENS["orders"]),
            "expired": app.state.portal.sessions._fernet.encrypt_at_time(
                TOKENS["orders"].encode(), int(time.time()) - SESSION_SECONDS - 5
            ).decode(),
            "garbage": "not-a-sealed-value",
            "unicode": "\u00e9t\u00e9",
            "huge": "A" * 3000,
        }[damage]
        if value.isascii():
            client.cookies.set(SESSION_COOKIE, value)
            answer = client.get("/ui/probe")
        else:  # httpx's cookie jar takes ASCII only; a browser may send any bytes
            raw = f"{SESSION_COOKIE}={value}".encode()
            answer = client.get("/ui/probe", headers={"Cookie": raw})  # type: ignore[dict-item]
        if read_auth:
            assert answer.status_code == 303, answer.text
            assert answer.headers["location"].startswith("/ui/login?next=")
        else:
            assert answer.status_code == 200
            assert answer.text == "principal=None signed_in=False"
        dropped = _set_cookies(answer)[SESSION_COOKIE]
        assert "max-age=0" in dropped
        assert "path=/ui" in dropped
        # a damaged cookie is no failed authentication: the right token still signs in
        assert _sign_in(client, TOKENS["orders"]).status_code == 303


def test_a_revoked_token_ends_its_session_at_once() -> None:
    for read_auth in (True, False):
        client = _client(_app(read_auth=read_auth, failures=2))
        admin = ("admin", TOKENS["admin"])
        issued = client.post("/admin/credentials/shipping", auth=admin)
        assert issued.status_code == 201, issued.text
        token = issued.json()["token"]
        assert _sign_in(client, token).status_code == 303
        assert client.get("/ui/probe").text == "principal=shipping signed_in=True"
        assert client.delete("/admin/credentials/shipping", auth=admin).status_code == 200
        answer = client.get("/ui/probe")
        if read_auth:
            assert answer.status_code == 303
        else:
            assert answer.text == "principal=None signed_in=False"
        assert "max-age=0" in _set_cookies(answer)[SESSION_COOKIE]
        # a stale session is not a guess: loading pages with it never locks the address out
        client.cookies.set(SESSION_COOKIE, SessionSealer(SECRET).seal(token))
        for _ in range(4):
            assert client.get("/ui/probe").status_code == (303 if read_auth else 200)
        assert client.get("/subjects", auth=admin).status_code == 200
        refused = _sign_in(client, token)  # the form says so, and counts it
        assert refused.status_code == 401


def test_a_rotated_token_ends_its_session_and_the_new_one_signs_in() -> None:
    client = _client(_app())
    admin = ("admin", TOKENS["admin"])
    first = client.post("/admin/credentials/shipping", auth=admin).json()["token"]
    assert _sign_in(client, first).status_code == 303
    second = client.post("/admin/credentials/shipping/rotate", auth=admin).json()["token"]
    assert client.get("/ui/probe").status_code == 303
    assert _sign_in(client, second).status_code == 303
    assert client.get("/ui/probe").text == "principal=shipping signed_in=True"


def test_signing_out_needs_the_csrf_token() -> None:
    client = _client(_app())
    assert _sign_in(client, TOKENS["orders"]).status_code == 303
    csrf = client.cookies.get(CSRF_COOKIE)
    assert csrf
    for sent in ({}, {"csrf_token": ""}, {"csrf_token": "x" * 43}, {"csrf_token": "\u00e9"}):
        refused = client.post("/ui/logout", data=sent)
        assert refused.status_code == 403
        assert "still signed in" in refused.text
        assert client.get("/ui/probe").text == "principal=orders signed_in=True"
    out = client.post("/ui/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    assert out.headers["location"] == "/ui/login"
    assert "max-age=0" in _set_cookies(out)[SESSION_COOKIE]
    assert client.get("/ui/probe").status_code == 303


def _cookie_copy(client: TestClient) -> str:
    value = client.cookies.get(SESSION_COOKIE, path="/ui")
    assert value
    return value


@pytest.mark.parametrize("principal", ["orders", "admin"])
def test_signing_out_ends_the_session_so_a_copy_of_its_cookie_is_refused(principal: str) -> None:
    """Signing out only told the browser to forget its cookie (h54): a copy stayed valid for
    up to 8 hours. Now the sign-out is in the registry's log and the copy is refused."""
    app = _app()
    client = _client(app)
    assert _sign_in(client, TOKENS[principal]).status_code == 303
    copied = _cookie_copy(client)
    other = _client(app)  # the same token signed in elsewhere: another session, unaffected
    assert _sign_in(other, TOKENS[principal]).status_code == 303
    out = client.post("/ui/logout", data={"csrf_token": client.cookies.get(CSRF_COOKIE)})
    assert out.status_code == 303, out.text
    thief = _client(app)
    thief.cookies.set(SESSION_COOKIE, copied)
    refused = thief.get("/ui/probe")
    assert refused.status_code == 303  # to the sign-in form, the copy dropped
    assert "max-age=0" in _set_cookies(refused)[SESSION_COOKIE]
    assert other.get("/ui/probe").text == f"principal={principal} signed_in=True"
    records = [r for r in app.state.services.schemas.store.records if r.key[0] == "session"]
    assert len(records) == 1
    assert records[0].value["ended_until_ms"] > (time.time() + SESSION_SECONDS - 60) * 1000
    again = _client(app)  # the same token signs in again: a new session
    assert _sign_in(again, TOKENS[principal]).status_code == 303
    assert again.get("/ui/probe").text == f"principal={principal} signed_in=True"


def test_a_sign_out_tombstones_the_sign_outs_whose_cookies_have_expired() -> None:
    from mesh_stream.registry.portal.access import end_session

    app = _app()
    services = app.state.services
    _client(app)  # the app started
    now = int(time.time() * 1000)
    end_session(services, "old-session", now_ms=now - SESSION_SECONDS * 1000 - 1)
    end_session(services, "recent-session", now_ms=now - 1000)
    assert set(services.schemas.state.ended_sessions) == {"old-session", "recent-session"}
    end_session(services, "this-session", now_ms=now)
    assert set(services.schemas.state.ended_sessions) == {"recent-session", "this-session"}
    last = services.schemas.store.records[-2:]
    assert (last[0].key, last[0].value) == (("session", "old-session"), None)


def test_a_sign_out_the_registry_cannot_record_keeps_the_session_and_says_so() -> None:
    from mesh_stream.errors import RegistryUnavailableError

    app = _app()
    client = _client(app)
    assert _sign_in(client, TOKENS["orders"]).status_code == 303
    store = app.state.services.schemas.store

    def unavailable(records: Any) -> None:
        raise RegistryUnavailableError("Kafka is unreachable", status=503, error_code=50302)

    store.append = unavailable
    out = client.post("/ui/logout", data={"csrf_token": client.cookies.get(CSRF_COOKIE)})
    assert out.status_code == 503
    assert out.headers["retry-after"] == "5"
    assert "could not be recorded (Kafka is unreachable); you are still signed in" in (
        html.unescape(out.text)
    ), out.text
    assert SESSION_COOKIE not in _set_cookies(out)
    assert client.get("/ui/probe").text == "principal=orders signed_in=True"


def test_a_replayed_sign_out_writes_nothing_again() -> None:
    app = _app()
    client = _client(app)
    assert _sign_in(client, TOKENS["orders"]).status_code == 303
    copied, csrf = _cookie_copy(client), client.cookies.get(CSRF_COOKIE)
    store = app.state.services.schemas.store
    for _ in range(3):  # the same form, cookie and token, again and again
        replay = _client(app)
        replay.cookies.set(SESSION_COOKIE, copied)
        replay.cookies.set(CSRF_COOKIE, csrf)
        assert replay.post("/ui/logout", data={"csrf_token": csrf}).status_code == 303
    assert len([r for r in store.records if r.key[0] == "session"]) == 1


def test_a_forwarded_sign_out_this_instance_cannot_open_says_the_keys_differ() -> None:
    """A follower's cookie sealed with another key (MESH_REGISTRY_SESSION_SECRET unset or
    different) cannot be ended by the writer: it says so rather than only dropping the
    cookie, which would leave copies valid on the follower (review h56)."""
    app = _app()
    client = _client(app)
    _form_token(client)  # the CSRF cookie
    csrf = client.cookies.get(CSRF_COOKIE)
    _sealed_session(client, SessionSealer("the-followers-own-secret").seal(TOKENS["orders"]))
    headers = {"x-mesh-registry-forwarded-by": "http://registry-2:8081"}
    answer = client.post("/ui/logout", data={"csrf_token": csrf}, headers=headers)
    assert answer.status_code == 503
    assert "seal sessions with different keys (MESH_REGISTRY_SESSION_SECRET)" in (
        html.unescape(answer.text)
    )
    assert SESSION_COOKIE not in _set_cookies(answer)
    # not forwarded: a cookie this instance cannot open is simply forgotten, as before
    plain = client.post("/ui/logout", data={"csrf_token": csrf})
    assert plain.status_code == 303
    # forwarded, but sealed here and expired (or no sealed value at all): forgotten too
    sealer = app.state.portal.sessions
    old = sealer._fernet.encrypt_at_time(b"{}", int(time.time()) - SESSION_SECONDS - 5).decode()
    for value in (old, "not-a-sealed-value"):
        _sealed_session(client, value)
        forgotten = client.post("/ui/logout", data={"csrf_token": csrf}, headers=headers)
        assert forgotten.status_code == 303, value


def test_the_bootstrap_admin_stays_signed_in_while_the_log_is_out_of_reach() -> None:
    """The admin token needs no log (break-glass); its session's sign-out check catches up
    with the log when it can, and goes by the view it has when it cannot (review h56)."""
    from mesh_stream.errors import RegistryUnavailableError

    app = _app()
    client = _client(app)
    assert _sign_in(client, TOKENS["admin"]).status_code == 303

    def unreachable() -> None:
        raise RegistryUnavailableError("Kafka is unreachable", status=503, error_code=50302)

    app.state.services.catch_up = unreachable
    assert client.get("/ui/probe").text == "principal=admin signed_in=True"


def test_a_cookie_sealed_with_the_token_alone_signs_in_again_never_500() -> None:
    """Cookies sealed before sessions had ids hold the bare token: signed out, not an error."""
    app = _app()
    client = _client(app)
    bare = app.state.portal.sessions._fernet.encrypt(TOKENS["orders"].encode()).decode()
    for value in (bare, app.state.portal.sessions._fernet.encrypt(b'{"token": 5}').decode()):
        client.cookies.set(SESSION_COOKIE, value)
        answer = client.get("/ui/probe")
        assert answer.status_code == 303
        assert "max-age=0" in _set_cookies(answer)[SESSION_COOKIE]


def test_signing_in_needs_the_csrf_cookie_and_a_matching_token() -> None:
    client = _client(_app())
    csrf, _ = _form_token(client)
    client.cookies.delete(CSRF_COOKIE)
    no_cookie = client.post("/ui/login", data={"token": TOKENS["orders"], "csrf_token": csrf})
    assert no_cookie.status_code == 403
    assert SESSION_COOKIE not in _set_cookies(no_cookie)
    fresh = _client(_app())
    _form_token(fresh)
    mismatch = fresh.post(
        "/ui/login", data={"token": TOKENS["orders"], "csrf_token": "a-token-of-another-site"}
    )
    assert mismatch.status_code == 403
    assert "came from another site" in mismatch.text
    assert SESSION_COOKIE not in _set_cookies(mismatch)
    missing = fresh.post("/ui/login", data={"token": TOKENS["orders"]})
    assert missing.status_code == 403


def test_signing_in_gives_a_new_csrf_token() -> None:
    client = _client(_app())
    before, _ = _form_token(client)
    landed = client.post("/ui/login", data={"token": TOKENS["orders"], "csrf_token": before})
    assert landed.status_code == 303
    assert client.cookies.get(CSRF_COOKIE) not in (None, before)


def test_an_api_client_with_a_wrong_header_gets_the_apis_401() -> None:
    client = _client(_app())
    wrong = client.get("/ui/probe", auth=("orders", "wrong"))
    assert wrong.status_code == 401
    assert wrong.json()["error_code"] == 40101
    assert wrong.headers["www-authenticate"].startswith("Basic")
    bearer = client.get("/ui/probe", headers={"Authorization": "Bearer wrong"})
    assert bearer.status_code == 401
    right = client.get("/ui/probe", auth=("orders", TOKENS["orders"]))
    assert right.text == "principal=orders signed_in=False"
    # the header wins over a session cookie
    assert _sign_in(client, TOKENS["payments"]).status_code == 303
    both = client.get("/ui/probe", auth=("orders", TOKENS["orders"]))
    assert both.text == "principal=orders signed_in=False"


def test_without_read_auth_pages_are_open_and_sign_in_is_optional() -> None:
    client = _client(_app(read_auth=False))
    assert client.get("/ui/probe").text == "principal=None signed_in=False"
    assert _sign_in(client, TOKENS["payments"]).status_code == 303
    assert client.get("/ui/probe").text == "principal=payments signed_in=True"


def test_without_credentials_everyone_is_admin_and_sign_in_just_lands() -> None:
    app = create_app(InMemoryStore(), session_secret=SECRET)
    client = _client(app)
    csrf, _ = _form_token(client, "/ui/domains")
    landed = client.post("/ui/login", data={"token": "", "csrf_token": csrf, "next": "/ui/domains"})
    assert landed.status_code == 303
    assert landed.headers["location"] == "/ui/domains"


def test_a_sign_out_is_forwarded_to_the_writer_and_a_sign_in_is_not() -> None:
    """A sign-in only touches the instance that got it (its cookie, its count); a sign-out
    is written to the log, so a follower forwards it."""
    assert not is_write("POST", "/ui/login")
    assert is_write("POST", "/ui/logout")
    assert not is_write("GET", "/ui/logout")
    assert is_write("POST", "/subjects/orders.x-value/versions")


def _depends_on(dependant: Any, wanted: Any) -> bool:
    return any(d.call is wanted or _depends_on(d, wanted) for d in dependant.dependencies)


def _fill(path: str, route: Any) -> str:
    for name in route.param_convertors:
        path = path.replace(f"{{{name}:path}}", "orders.order-placed").replace(
            f"{{{name}}}", "orders.order-placed"
        )
    return path


def test_every_portal_page_needs_the_viewer_and_redirects_anonymous_readers() -> None:
    """Structural: every ``/ui`` route but the sign-in form, sign-out and static files depends
    on ``viewer``, and with read auth on answers an anonymous request with the sign-in
    redirect (a new page cannot forget read auth)."""
    app = create_app(
        InMemoryStore(),
        credentials=Credentials(TOKENS),
        read_requires_auth=True,
        session_secret=SECRET,
    )
    client = _client(app)
    exempt = {"/ui/login", "/ui/logout"}
    pages = [
        route
        for route in iter_route_contexts(app.routes)
        if route.path.startswith("/ui")
        and route.path not in exempt
        and hasattr(route, "dependant")  # the static files' mount has none
    ]
    assert {"/ui", "/ui/"} <= {r.path for r in pages}
    assert len(pages) >= 2
    for route in pages:
        assert _depends_on(route.dependant, viewer), route.path
        for method in sorted(route.methods or {"GET"}):
            answer = client.request(method, _fill(route.path, route))
            if route.path.startswith("/ui/api/"):
                assert answer.status_code == 401, (route.path, method, answer.text)
                assert answer.headers["hx-redirect"].startswith("/ui/login?next=")
            else:
                assert answer.status_code == 303, (route.path, method, answer.text)
                assert answer.headers["location"].startswith("/ui/login?next=%2Fui")
    statics = [r for r in app.routes if getattr(r, "path", "") == "/ui/static"]
    assert len(statics) == 1  # the one mount without a viewer: assets, no data


def test_an_unknown_portal_path_is_a_friendly_404_page_after_the_sign_in_rule() -> None:
    guarded = _client(_app())
    assert guarded.get("/ui/no/such/page").status_code == 303  # nothing shown before sign-in
    assert _sign_in(guarded, TOKENS["orders"]).status_code == 303
    missing = guarded.get("/ui/no/such/page?x=<script>")
    assert missing.status_code == 404
    assert "text/html" in missing.headers["content-type"]
    assert "Page not found" in missing.text
    assert "The portal has no page at /ui/no/such/page." in missing.text
    assert "<script>" not in missing.text
    assert _client(_app(read_auth=False)).get("/ui/nothing").status_code == 404
    assert _client(_app(read_auth=False)).get("/ui/static/nothing.js").status_code == 404


def test_kafka_unreachable_while_checking_a_session_is_a_503_page_not_json() -> None:
    from mesh_stream.errors import RegistryUnavailableError

    def unreachable() -> None:
        raise RegistryUnavailableError("Kafka unreachable", status=503, error_code=50302)

    for read_auth in (True, False):
        app = _app(read_auth=read_auth)
        client = _client(app)
        assert _sign_in(client, TOKENS["orders"]).status_code == 303
        app.state.services.auth._catch_up = unreachable
        page = client.get("/ui/probe")
        if read_auth:  # who it is cannot be checked, and reading needs someone
            assert page.status_code == 503
            assert "text/html" in page.headers["content-type"]
            assert "The registry is unavailable" in page.text
            assert page.headers["retry-after"] == "5"
            fragment = client.get("/ui/probe", headers={"HX-Request": "true"})
            assert fragment.status_code == 503
            assert fragment.json()["error_code"] == 50302
        else:  # an open read is served as to an anonymous reader
            assert page.status_code == 200
            assert page.text == "principal=None signed_in=False"
        api = client.get("/subjects", auth=("orders", TOKENS["orders"]))
        assert api.status_code == (503 if read_auth else 200)  # the API's own rule, as before
        if read_auth:
            assert api.json()["error_code"] == 50302


def test_odd_sign_in_forms_get_the_form_back_never_json() -> None:
    client = _client(_app(failures=100))
    csrf, _ = _form_token(client)
    odd = [
        {"token": "t" * 20_000, "csrf_token": csrf, "next": "/ui/probe"},
        {"token": "\u00e9\u0000\ud7ff", "csrf_token": csrf},
        {"token": TOKENS["orders"], "csrf_token": csrf * 50},
        {"token": TOKENS["orders"], "csrf_token": csrf, "next": "/ui/" + "n" * 50_000},
    ]
    statuses = []
    for form in odd:
        answer = client.post("/ui/login", data=form)
        statuses.append(answer.status_code)
        if answer.status_code == 303:
            assert answer.headers["location"] == "/ui/products"  # next too long: home
        else:
            assert "text/html" in answer.headers["content-type"]
            assert 'role="alert"' in answer.text
    assert statuses == [401, 401, 403, 303]
    as_json = client.post("/ui/login", json={"token": TOKENS["orders"], "csrf_token": csrf})
    assert as_json.status_code == 403  # not a form: no CSRF token in it
