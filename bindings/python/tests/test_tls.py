"""wss:// and proxies from Python: the blocking API, the event loop and
libws.asyncio, with throwaway certificates (``LIBWS_TEST_PKI``, made by
tests/support/pki.rs with openssl) and a real HTTP CONNECT proxy
(``LIBWS_TEST_HTTP_PROXY``, tinyproxy started by tests/python_binding.rs).
Run by hand without them, these tests are skipped; under ``cargo test``
the harness sets both and refuses skips."""

import asyncio
import os
import threading
from pathlib import Path

import pytest

import libws
import libws.asyncio

from conftest import echo_handler

PKI = os.environ.get("LIBWS_TEST_PKI")
pytestmark = pytest.mark.skipif(not PKI, reason="LIBWS_TEST_PKI is not set (tests/python_binding.rs sets it)")


def pki(name: str) -> str:
    return str(Path(PKI or "") / name)


def leaf(name: str):
    return pki(f"{name}.pem"), pki(f"{name}.key")


def trusting(**kw) -> libws.ClientTLS:
    return libws.ClientTLS(ca_file=pki("ca.pem"), **kw)


def loop_echo_once(ev, url, text, **dial_kw):
    """Dials ``url`` on the running loop ``ev`` (no proxy), sends ``text``
    once open and returns what came back: ``[reply]``, or ``[error]``
    when the dial failed."""
    got = []
    done = threading.Event()

    def on_message(conn, m):
        got.append(m)
        conn.close()
        done.set()

    def on_connect_error(err):
        got.append(err)
        done.set()

    ev.dial(url, proxy=None, on_open=lambda c: c.send(text), on_message=on_message,
            on_connect_error=on_connect_error, **dial_kw)
    assert done.wait(15), f"no answer over TLS from {url}"
    return got


@pytest.fixture
def tls_server():
    tls = libws.ServerTLS(*leaf("server-ec"))
    with libws.serve("127.0.0.1", 0, echo_handler, background=True, tls=tls) as server:
        yield server, tls


def test_blocking_wss_echo(tls_server):
    server, _ = tls_server
    with libws.connect(f"wss://localhost:{server.port}/", tls=trusting(), proxy=None) as ws:
        ws.send("over tls")
        assert ws.recv(timeout=10) == "over tls"
        ws.send(b"\x00" * 100000)
        assert ws.recv(timeout=10) == b"\x00" * 100000


def test_certificate_refusals(tls_server):
    server, _ = tls_server
    url = f"wss://localhost:{server.port}/"
    # Our CA is not in the system store.
    with pytest.raises(libws.CertificateError) as e:
        libws.connect(url, tls=libws.ClientTLS(), proxy=None)
    assert e.value.ws_status == 31 and isinstance(e.value, OSError)
    # A CA nobody issued this server's certificate from.
    with pytest.raises(libws.CertificateError):
        libws.connect(url, tls=libws.ClientTLS(ca_file=pki("rogue-ca.pem")), proxy=None)
    # A certificate for another name, and an expired one.
    for name in ("wrong-name", "expired"):
        other = libws.ServerTLS(*leaf(name))
        with libws.serve("127.0.0.1", 0, echo_handler, background=True, tls=other) as s2:
            with pytest.raises(libws.CertificateError):
                libws.connect(f"wss://localhost:{s2.port}/", tls=trusting(), proxy=None, timeout=5)


def test_tls_config_errors():
    with pytest.raises(libws.TLSConfigError):
        libws.ServerTLS(pki("server-ec.pem"), pki("server-rsa.key"))  # key of another certificate
    with pytest.raises(libws.TLSConfigError):
        libws.ServerTLS("/nonexistent.pem", pki("server-ec.key"))
    with pytest.raises(libws.TLSConfigError):
        libws.connect("wss://localhost:1/", tls=libws.ClientTLS(ca_file="/nonexistent.pem"), proxy=None)
    with pytest.raises(ValueError):
        libws.ServerTLS(*leaf("server-ec"), client_auth="required")  # no client_ca_file
    with pytest.raises(ValueError):
        libws.connect("wss://localhost:1/", tls=libws.ClientTLS(min_version="1.1"), proxy=None)
    with pytest.raises(TypeError):
        libws.connect("wss://localhost:1/", tls="insecure", proxy=None)  # type: ignore[arg-type]


def test_mutual_tls_and_certificate_replacement():
    tls = libws.ServerTLS(*leaf("server-ec"), client_auth="required", client_ca_file=pki("ca.pem"))
    with libws.serve("127.0.0.1", 0, echo_handler, background=True, tls=tls) as server:
        url = f"wss://localhost:{server.port}/"
        with pytest.raises((libws.TLSError, libws.ConnectionClosed, libws.TransportError)):
            # Without a client certificate the server ends the handshake
            # (TLS 1.3 may report it on the first read instead).
            with libws.connect(url, tls=trusting(), proxy=None) as ws:
                ws.send("x")
                ws.recv(timeout=5)
        client = trusting(cert_file=pki("client.pem"), key_file=pki("client.key"))
        with libws.connect(url, tls=client, proxy=None) as ws:
            ws.send("mtls")
            assert ws.recv(timeout=10) == "mtls"
        tls.replace_certificate(*leaf("server-rsa"))
        with libws.connect(url, tls=client, proxy=None) as ws:
            ws.send("replaced")
            assert ws.recv(timeout=10) == "replaced"
        with pytest.raises(libws.TLSConfigError):
            tls.replace_certificate(pki("server-ec.pem"), pki("server-rsa.key"))


def test_event_loop_wss_server_and_client():
    tls = libws.ServerTLS(*leaf("server-ec"))
    with libws.EventLoop() as ev:
        ev.start()
        lst = ev.listen("127.0.0.1", 0, on_message=lambda c, m: c.send(m), tls=tls)
        assert loop_echo_once(ev, f"wss://localhost:{lst.port}/", "loop tls", tls=trusting()) == ["loop tls"]


def test_asyncio_wss():
    async def main():
        tls = libws.ServerTLS(*leaf("server-ec"))

        async def handler(ws):
            async for m in ws:
                await ws.send(m)

        async with libws.asyncio.serve(handler, "127.0.0.1", 0, tls=tls) as server:
            url = f"wss://localhost:{server.port}/"
            async with libws.asyncio.connect(url, tls=trusting(), proxy=None) as ws:
                await ws.send("asyncio tls")
                assert await asyncio.wait_for(ws.recv(), 10) == "asyncio tls"
            with pytest.raises(libws.CertificateError):
                await libws.asyncio.connect(url, tls=libws.ClientTLS(ca_file=pki("rogue-ca.pem")), proxy=None)

    asyncio.run(main())


def test_shorthand_arguments_ca_client_cert_certfile_keyfile():
    """connect(ca=, client_cert=) and serve(certfile=, keyfile=), as the
    issue asks and ``ssl`` users write them, on every API."""
    cert, key = leaf("server-ec")
    client_cert = (pki("client.pem"), pki("client.key"))
    with libws.serve("127.0.0.1", 0, echo_handler, background=True, certfile=cert, keyfile=key) as server:
        url = f"wss://localhost:{server.port}/"
        with libws.connect(url, ca=pki("ca.pem"), proxy=None) as ws:
            ws.send("shorthand")
            assert ws.recv(timeout=10) == "shorthand"
        with pytest.raises(libws.CertificateError):
            libws.connect(url, ca=pki("rogue-ca.pem"), proxy=None)
        with pytest.raises(ValueError):
            libws.connect(url, ca=pki("ca.pem"), tls=trusting(), proxy=None)
    # Mutual TLS with client_cert= as a (cert, key) pair.
    tls = libws.ServerTLS(cert, key, client_auth="required", client_ca_file=pki("ca.pem"))
    with libws.serve("127.0.0.1", 0, echo_handler, background=True, tls=tls) as server:
        with libws.connect(f"wss://localhost:{server.port}/", ca=pki("ca.pem"), client_cert=client_cert,
                           proxy=None) as ws:
            ws.send("mtls shorthand")
            assert ws.recv(timeout=10) == "mtls shorthand"
    with pytest.raises(ValueError):
        libws.serve("127.0.0.1", 0, echo_handler, keyfile=key)  # keyfile without certfile
    # The event-driven server and the loop's dial.
    with libws.serve_events("127.0.0.1", 0, on_message=lambda c, m: c.send(m), background=True,
                            certfile=cert, keyfile=key) as server:
        with libws.EventLoop() as ev:
            ev.start()
            got = loop_echo_once(ev, f"wss://localhost:{server.port}/", "events tls", ca=pki("ca.pem"))
        assert got == ["events tls"]

    async def main():
        async def handler(ws):
            async for m in ws:
                await ws.send(m)

        async with libws.asyncio.serve(handler, "127.0.0.1", 0, certfile=cert, keyfile=key) as server:
            async with libws.asyncio.connect(f"wss://localhost:{server.port}/", ca=pki("ca.pem"),
                                             proxy=None) as ws:
                await ws.send("asyncio shorthand")
                assert await asyncio.wait_for(ws.recv(), 10) == "asyncio shorthand"

    asyncio.run(main())


def test_blocking_through_an_http_proxy(tls_server, echo_url):
    proxy = os.environ.get("LIBWS_TEST_HTTP_PROXY")
    if proxy is None:
        pytest.skip("LIBWS_TEST_HTTP_PROXY is not set")
    assert proxy, "tinyproxy could not be found or installed (tests/python_binding.rs)"
    with libws.connect(echo_url, proxy=proxy) as ws:
        ws.send("via proxy")
        assert ws.recv(timeout=10) == "via proxy"
    server, _ = tls_server
    with libws.connect(f"wss://localhost:{server.port}/", tls=trusting(), proxy=proxy) as ws:
        ws.send("wss via proxy")
        assert ws.recv(timeout=10) == "wss via proxy"
    # A proxy that is not there.
    with pytest.raises(libws.ProxyError):
        libws.connect(echo_url, proxy="http://127.0.0.1:1", timeout=5)

    # asyncio (the event loop's non-blocking dial) through the same proxy.
    async def through_proxy():
        async with libws.asyncio.connect(f"wss://localhost:{server.port}/", tls=trusting(), proxy=proxy) as ws:
            await ws.send("asyncio via proxy")
            assert await asyncio.wait_for(ws.recv(), 10) == "asyncio via proxy"
        with pytest.raises(libws.ProxyError):
            await libws.asyncio.connect(echo_url, proxy="http://127.0.0.1:1", open_timeout=5)

    asyncio.run(through_proxy())
    # The environment is the default, as in websockets.
    old = {k: os.environ.get(k) for k in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY")}
    try:
        for k in old:
            os.environ.pop(k, None)
        os.environ["http_proxy"] = "http://127.0.0.1:1"
        with pytest.raises(libws.ProxyError):
            libws.connect(echo_url, timeout=5)
        with libws.connect(echo_url, proxy=None) as ws:  # None: direct
            ws.send("direct")
            assert ws.recv(timeout=10) == "direct"
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
