"""Routes for the account key epochs (``/v1/account/key-epochs``).

Both take a normal session (``Auth``) and call ``key_epochs``; adding an epoch signs out
every other session of the account (docs/PROTOCOL.md, "Account key epochs").
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.sync import protocol
from app.sync.server import key_epochs
from app.sync.server.deps import Auth, Ctx
from app.sync.server.schemas import ErrorOut, KeyEpochCreatedOut, KeyEpochIn, KeyEpochsOut

router = APIRouter(prefix=protocol.API_PREFIX)

_EPOCHS = protocol.PATH_KEY_EPOCHS.removeprefix(protocol.API_PREFIX)


@router.get(_EPOCHS, response_model=KeyEpochsOut, tags=["account"])
def get_key_epochs(principal: Auth, ctx: Ctx) -> protocol.KeyEpochsResponse:
    """The account's key epochs after the first (whose KDF parameters are the sign-up's,
    from ``GET /v1/auth/params``), ascending by epoch; empty when there are none."""
    return key_epochs.list_epochs(ctx, principal)


_POST_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorOut,
        "description": "epoch_conflict: not exactly the highest epoch + 1 (fetch the epochs "
        f"again), or the account already has epoch {protocol.MAX_KEY_EPOCH}",
    },
}


@router.post(_EPOCHS, response_model=KeyEpochCreatedOut, tags=["account"], responses=_POST_ERRORS)
def post_key_epoch(body: KeyEpochIn, principal: Auth, ctx: Ctx) -> protocol.KeyEpochResponse:
    """Add the account's next key epoch: its Argon2id parameters and fresh salt (checked
    as at sign-up, ``kdf_too_weak`` below the server's floor). In the same transaction
    every session of the account except the caller's ends (``sessions_ended`` counts
    them), so the other devices sign in again with the password; device control tokens
    keep working."""
    return key_epochs.add_epoch(ctx, principal, body)
