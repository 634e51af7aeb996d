"""The Tacit sync server: an ASGI app (FastAPI) that stores opaque, client-encrypted items
and attachments for accounts that log in with a signed challenge and TOTP.

Layering: this package imports only ``app.sync.protocol`` and ``app.errors`` from the
project (never ``app.vault``, the rest of ``app.sync``, or Qt). Entry points live in
``main`` (``run``, ``migrate``) and ``asgi`` (``create_app``); docs/PROTOCOL.md is the
wire protocol and the list of what the server can see.
"""
