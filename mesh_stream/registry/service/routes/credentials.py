"""``/admin/credentials``: issue, rotate, revoke and list registry tokens (admin only).

A token appears once, in the answer to add or rotate (``Cache-Control: no-store``), and is
stored only hashed; the list never holds one. Writes reach the writer like every write
(followers forward them). The rules are in :mod:`..credentials`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from mesh_stream.errors import InvalidPrincipalError, InvalidRequestError, PermissionDeniedError
from mesh_stream.registry.service.auth import ADMIN, require_principal
from mesh_stream.registry.service.context import CallerDep, ServicesDep
from mesh_stream.registry.service.credentials import check_principal


def _no_encoded_separator(request: Request) -> None:
    """Refuse ``%2F`` in the URL: decoded before routing, ``x%2Frotate`` would rotate ``x``."""
    raw = (request.scope.get("raw_path") or b"").lower()
    if b"%2f" in raw or b"%5c" in raw:
        raise InvalidPrincipalError(
            "a principal name holds a path separator ('/' or '\\'); principals are domain "
            "names (lowercase letters and digits, words joined by '-')",
            status=422,
            error_code=42217,
        )


async def _no_body(request: Request, caller: CallerDep) -> None:
    """Refuse a body on add and rotate: the registry makes every token (a token given in the
    body was ignored, and its sender believed it set). Only an admin's: anyone else is
    refused by the route as not admin, whatever the body."""
    if caller == ADMIN and await request.body():
        raise InvalidRequestError(
            "this request takes no body: the registry makes the token itself and shows it "
            "once, in the answer",
            status=400,
            error_code=40001,
        )


router = APIRouter(
    prefix="/admin/credentials",
    tags=["credentials"],
    dependencies=[Depends(_no_encoded_separator)],
)


def _admin(principal: str | None, action: str) -> str:
    who = require_principal(principal, action)
    if who != ADMIN:
        raise PermissionDeniedError(
            f"principal '{who}' may not {action}: only admin manages credentials"
        )
    return who


def _secret_answer(response: Response) -> None:
    """An answer holding a token is never kept by a cache or proxy."""
    response.headers["Cache-Control"] = "no-store"


@router.get("", summary="Every principal with its token's source and id (no secrets)")
def list_credentials(services: ServicesDep, principal: CallerDep) -> list[dict[str, Any]]:
    _admin(principal, "list credentials")
    services.catch_up()  # a follower answers as of the log's end, like the writer
    return services.credentials.listing()


@router.post(
    "/{principal}",
    summary="Issue a first token to a principal (shown once; 409 if it has one)",
    status_code=201,
    dependencies=[Depends(_no_body)],
)
def add_credential(
    principal: str, response: Response, services: ServicesDep, caller: CallerDep
) -> dict[str, str]:
    who = _admin(caller, f"add a token for '{principal}'")
    _secret_answer(response)
    return services.credentials.add(principal, by=who).to_dict()


@router.post(
    "/{principal}/rotate",
    summary="Replace a principal's token (shown once)",
    dependencies=[Depends(_no_body)],
)
def rotate_credential(
    principal: str, response: Response, services: ServicesDep, caller: CallerDep
) -> dict[str, str]:
    who = _admin(caller, f"rotate the token of '{principal}'")
    _secret_answer(response)
    return services.credentials.rotate(principal, by=who).to_dict()


@router.delete("/{principal}", summary="Revoke a principal's token until it is added again")
def revoke_credential(principal: str, services: ServicesDep, caller: CallerDep) -> dict[str, Any]:
    who = _admin(caller, f"revoke the token of '{principal}'")
    return services.credentials.revoke(principal, by=who)


@router.post("/{name:path}", include_in_schema=False)
@router.delete("/{name:path}", include_in_schema=False)
def unrouted_principal(name: str, caller: CallerDep) -> None:
    """A name no route above took holds a ``/`` (``a/b``, ``x/y/rotate``): 422 naming it,
    rather than a bare 404 that reads as "no such API"."""
    _admin(caller, "manage credentials")
    check_principal(name)
    raise InvalidPrincipalError(  # a valid name reaches the routes above; kept for safety
        f"no credentials action at '{name[:60]}'", status=422, error_code=42217
    )
