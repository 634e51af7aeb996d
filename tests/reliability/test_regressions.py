"""Regression tests for bugs the reliability runs found."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import OfflineError, TlsError
from app.sync.client import HttpTransport
from tests.reliability.harness import FaultProxy, ServerProcess


@pytest.fixture
def cuts_the_handshake() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that reads the ClientHello and hangs up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)  # so the loop sees ``stop``
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with conn:
                conn.recv(65536)  # all of the ClientHello: then a clean FIN, no RST

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()
    thread.join(timeout=5)


def test_a_connection_cut_during_the_tls_handshake_is_offline_not_tls_error(
    cuts_the_handshake: str, tmp_path: Path
) -> None:
    """Found by the sync-under-faults run (seed 9300): a server restart or a dropped
    connection in the middle of the handshake was reported as ``tls_error`` ("the
    certificate could not be verified … someone in between", exit 12, and the app's
    error state) instead of ``offline`` (exit 11, "Offline — will retry")."""
    server = ServerProcess(tmp_path / "ca-only", "https://127.0.0.1:1")  # for its CA file
    with (
        HttpTransport(cuts_the_handshake, ca_file=server.ca_file, timeout=5) as transport,
        pytest.raises(OfflineError),
    ):
        transport.health()


def test_a_certificate_from_another_ca_is_still_tls_error(tmp_path: Path) -> None:
    """The other half: a real certificate check failure stays ``tls_error``."""
    proxy = FaultProxy(seed=1, faulty=False)
    proxy.start()
    server = ServerProcess(tmp_path / "server", proxy.url)
    other = ServerProcess(tmp_path / "other", proxy.url)  # a CA the server did not use
    try:
        server.start()
        proxy.target_port = server.port
        with HttpTransport(proxy.url, ca_file=server.ca_file) as transport:
            transport.health()
        with (
            HttpTransport(proxy.url, ca_file=other.ca_file) as transport,
            pytest.raises(TlsError),
        ):
            transport.health()
    finally:
        server.stop()
        proxy.close()


def test_the_server_keeps_an_idle_connection_longer_than_the_apps_sync_delay(
    tmp_path: Path,
) -> None:
    """Found by ``bench.load --think-s 5``: uvicorn's default keep-alive (5 s) closed a
    kept connection just as a device synced again a few seconds after a change; a request
    that crossed the close failed (``RemoteProtocolError``, 17 of 8,750 requests: the app
    would say "offline"). The server now keeps idle connections for 75 s."""
    import ssl
    import time

    from app.sync import protocol

    proxy = FaultProxy(seed=1, faulty=False)
    proxy.start()
    server = ServerProcess(tmp_path / "server", proxy.url)
    try:
        server.start()
        ctx = ssl.create_default_context(cafile=str(server.ca_file))
        request = f"GET {protocol.PATH_HEALTH} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):

            def answer() -> bytes:
                """Headers and the JSON body (uvicorn writes them apart); b"" if closed."""
                data = b""
                while not data.endswith(b"}"):
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                return data

            tls.sendall(request)
            assert answer().startswith(b"HTTP/1.1 200")
            time.sleep(6.5)  # longer than uvicorn's default keep-alive
            tls.sendall(request)
            assert answer().startswith(b"HTTP/1.1 200")
    finally:
        server.stop()
        proxy.close()
