"""The account web page (``/account``): sign in from any browser, see the account's
devices, lock, wipe or restore one.

The server only serves files here; everything secret happens in the browser
(``web/account.js``): Argon2id (the vendored ``hash-wasm``), HKDF and Ed25519
(WebCrypto), then the same ``/v1`` API the app uses. The password, the master key and
the derived keys never leave the page, and the page stores nothing (no cookies, no web
storage). docs/PROTOCOL.md ("The /account web page") describes the flow and
docs/SECURITY.md its limits: whoever controls this server controls this code.

Invariants:
- only the files listed in ``_ASSETS`` are served (no directory listing, no path from
  the request reaches the file system); they are read once, when the app is built;
- every response carries ``SECURITY_HEADERS``: a CSP without inline script or style
  (``'wasm-unsafe-eval'`` is the one allowance, for the Argon2 WebAssembly module),
  no framing, no referrer, no sniffing, and ``Cache-Control: no-store``;
- the only value the server writes into the page is its own KDF floor, as data
  attributes (the page refuses weaker parameters from ``/v1/auth/params``).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response

from app.sync.server.settings import KdfFloor

WEB_DIR = Path(__file__).resolve().parent / "web"
PAGE_PATH = "/account"
ASSET_PREFIX = "/account/assets/"

CSP = "; ".join(
    (
        "default-src 'self'",
        # WebAssembly compilation needs 'wasm-unsafe-eval'; it does not allow eval().
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        # The form is submitted by script only: if the script fails to load, the
        # browser must not send the password anywhere (not even to this server).
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "Cache-Control": "no-store",
}

# URL name -> (file under WEB_DIR, media type). Nothing else is served.
_ASSETS: dict[str, tuple[str, str]] = {
    "account.js": ("account.js", "text/javascript; charset=utf-8"),
    "account.css": ("account.css", "text/css; charset=utf-8"),
    "argon2.umd.min.js": ("vendor/argon2.umd.min.js", "text/javascript; charset=utf-8"),
    "hash-wasm-LICENSE.txt": ("vendor/hash-wasm-LICENSE", "text/plain; charset=utf-8"),
}


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    media_type: str


def _page(floor: KdfFloor) -> bytes:
    """``web/account.html`` with the server's KDF floor filled in."""
    text = (WEB_DIR / "account.html").read_text(encoding="utf-8")
    for name, value in (
        ("KDF_MIN_MEMORY_KIB", floor.memory_kib),
        ("KDF_MIN_ITERATIONS", floor.iterations),
        ("KDF_MIN_PARALLELISM", floor.parallelism),
    ):
        text = text.replace("{{" + name + "}}", html.escape(str(int(value))))
    return text.encode("utf-8")


def _respond(file: _File) -> Response:
    return Response(content=file.body, media_type=file.media_type, headers=SECURITY_HEADERS)


def install(app: FastAPI, floor: KdfFloor) -> None:
    """Add the page and its assets to ``app``. Raises OSError when a file is missing
    (a broken install should fail at start, not on the first visit)."""
    page = _File(_page(floor), "text/html; charset=utf-8")
    assets = {
        name: _File((WEB_DIR / rel).read_bytes(), media_type)
        for name, (rel, media_type) in _ASSETS.items()
    }
    router = APIRouter(include_in_schema=False)

    @router.get(PAGE_PATH)
    def account_page() -> Response:
        return _respond(page)

    for name, file in assets.items():
        router.add_api_route(
            ASSET_PREFIX + name, _asset_handler(file), methods=["GET"], name=f"asset:{name}"
        )
    app.include_router(router)


def _asset_handler(file: _File) -> Callable[[], Response]:
    def serve() -> Response:
        return _respond(file)

    return serve
