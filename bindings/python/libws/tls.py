"""TLS settings for ``wss://`` clients and servers, and the proxy argument.

libws runs TLS itself (rustls), so these are its own settings rather than
an :class:`ssl.SSLContext` (whose certificates cannot be handed to another
TLS stack):

- :class:`ClientTLS` for :func:`libws.connect`, :meth:`EventLoop.dial` and
  :func:`libws.asyncio.connect` (``tls=``): whom to trust, a client
  certificate, the lowest version. Without one a ``wss://`` URL is checked
  against the system's trust store.
- :class:`ServerTLS` for :func:`libws.serve`, :meth:`EventLoop.listen` and
  :func:`libws.asyncio.serve` (``tls=``): the certificate and key, client
  certificates, the lowest version. Its certificate can be replaced while
  servers run (:meth:`ServerTLS.replace_certificate`).
"""

from __future__ import annotations

import os
import threading
from ctypes import byref, c_void_p
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from . import _ffi
from .exceptions import error_for

__all__ = ["ClientTLS", "ServerTLS"]

PathLike = Union[str, "os.PathLike[str]"]
ProxyArg = Union[str, bool, None]

_VERSIONS = {"1.2": _ffi.WS_TLS_1_2, "1.3": _ffi.WS_TLS_1_3}
_CLIENT_AUTH = {
    "none": _ffi.WS_TLS_CLIENT_AUTH_NONE,
    "optional": _ffi.WS_TLS_CLIENT_AUTH_OPTIONAL,
    "required": _ffi.WS_TLS_CLIENT_AUTH_REQUIRED,
}


def _path(p: Optional[PathLike], what: str) -> Optional[bytes]:
    if p is None:
        return None
    if not isinstance(p, (str, os.PathLike)):
        raise TypeError(f"{what} must be a path, not {type(p).__name__}")
    b = os.fsencode(p)
    if b"\0" in b:
        raise ValueError(f"{what} must not contain NUL")
    return b


def _version(v: str) -> int:
    if v not in _VERSIONS:
        raise ValueError(f"min_version must be '1.2' or '1.3', not {v!r}")
    return _VERSIONS[v]


def _check(st: int) -> None:
    if st != _ffi.WS_OK:
        raise error_for(st)


@dataclass(frozen=True)
class ClientTLS:
    """How a client checks servers and which certificate it shows.

    Args:
        ca_file: PEM file of the CAs to trust; with one (or ``ca_data``)
            the system store is not used unless ``system_roots=True``.
        ca_data: the same as PEM text or bytes.
        cert_file, key_file: a client certificate chain (leaf first) and
            its key (PEM) for servers that ask (mutual TLS); both or
            neither.
        system_roots: trust the system store too (default: only when no
            CA is given).
        min_version: ``"1.2"`` (default) or ``"1.3"``.
        insecure_skip_hostname_verification: FOR TEST SETUPS ONLY: accept
            a certificate for another host name (the chain is still
            verified).
    """

    ca_file: Optional[PathLike] = None
    ca_data: Union[str, bytes, None] = None
    cert_file: Optional[PathLike] = None
    key_file: Optional[PathLike] = None
    system_roots: Optional[bool] = None
    min_version: str = "1.2"
    insecure_skip_hostname_verification: bool = False

    def _apply(self, dialer: int) -> None:
        """Gives ``dialer`` these settings (the dialer keeps a copy)."""
        ca = _path(self.ca_file, "ca_file")
        cert, key = _path(self.cert_file, "cert_file"), _path(self.key_file, "key_file")
        if (cert is None) != (key is None):
            raise ValueError("cert_file and key_file go together")
        data = self.ca_data.encode("ascii") if isinstance(self.ca_data, str) else self.ca_data
        if data is not None and not isinstance(data, bytes):
            raise TypeError("ca_data must be str or bytes")
        version = _version(self.min_version)
        cfg = _ffi.ws_tls_client_config_new()
        if not cfg:
            # Only a libws built without TLS refuses (ws_last_error says so).
            raise error_for(_ffi.WS_ERR_UNSUPPORTED)
        try:
            if ca is not None:
                _check(_ffi.ws_tls_client_config_add_ca_file(cfg, ca))
            if data is not None:
                _check(_ffi.ws_tls_client_config_add_ca_pem(cfg, data, len(data)))
            if self.system_roots is not None:
                _check(_ffi.ws_tls_client_config_use_system_roots(cfg, bool(self.system_roots)))
            if cert is not None:
                _check(_ffi.ws_tls_client_config_set_certificate_files(cfg, cert, key))
            _check(_ffi.ws_tls_client_config_set_min_version(cfg, version))
            if self.insecure_skip_hostname_verification:
                _check(_ffi.ws_tls_client_config_insecure_skip_hostname_verification(cfg, True))
            _check(_ffi.ws_dialer_set_tls(dialer, cfg))
        finally:
            _ffi.ws_tls_client_config_free(cfg)


class ServerTLS:
    """A server's certificate and TLS rules, shared by every server given it.

    Args:
        cert_file: PEM certificate chain, leaf first.
        key_file: its private key (PEM: PKCS#8, RSA or EC).
        client_auth: ``"none"`` (default), ``"optional"`` or
            ``"required"``: ask clients for certificates, verified against
            ``client_ca_file``.
        client_ca_file: PEM file of the CAs client certificates must come
            from (needed unless ``client_auth="none"``).
        min_version: ``"1.2"`` (default) or ``"1.3"``.

    Raises:
        TLSConfigError: a file cannot be read, holds no certificate or key,
            or the key does not match the certificate.
    """

    def __init__(
        self,
        cert_file: PathLike,
        key_file: PathLike,
        *,
        client_auth: str = "none",
        client_ca_file: Optional[PathLike] = None,
        min_version: str = "1.2",
    ) -> None:
        cert, key = _path(cert_file, "cert_file"), _path(key_file, "key_file")
        if client_auth not in _CLIENT_AUTH:
            raise ValueError(f"client_auth must be 'none', 'optional' or 'required', not {client_auth!r}")
        ca = _path(client_ca_file, "client_ca_file")
        if client_auth != "none" and ca is None:
            raise ValueError(f"client_auth={client_auth!r} needs client_ca_file")
        version = _version(min_version)
        self._lock = threading.Lock()
        self._cfg: Optional[int] = None
        h = c_void_p()
        _check(_ffi.ws_tls_server_config_new_files(cert, key, byref(h)))
        self._cfg = h.value
        try:
            if client_auth != "none":
                _check(_ffi.ws_tls_server_config_set_client_auth(self._cfg, _CLIENT_AUTH[client_auth], ca))
            _check(_ffi.ws_tls_server_config_set_min_version(self._cfg, version))
        except BaseException:
            self._free()
            raise

    def replace_certificate(self, cert_file: PathLike, key_file: PathLike) -> None:
        """Serves this certificate on new handshakes of every server using
        these settings (open connections keep theirs); on failure the old
        one stays. Any thread."""
        cert, key = _path(cert_file, "cert_file"), _path(key_file, "key_file")
        with self._lock:
            if self._cfg is None:
                raise ValueError("these TLS settings were freed")
            _check(_ffi.ws_tls_server_config_replace_certificate_files(self._cfg, cert, key))

    def _apply(self, upgrader: int) -> None:
        """Gives ``upgrader`` a share of these settings."""
        with self._lock:
            if self._cfg is None:
                raise ValueError("these TLS settings were freed")
            _check(_ffi.ws_upgrader_set_tls(upgrader, self._cfg))

    def _free(self) -> None:
        with self._lock:
            if self._cfg is not None:
                # Upgraders and listeners that took a share keep it.
                _ffi.ws_tls_server_config_free(self._cfg)
                self._cfg = None

    def __del__(self) -> None:
        try:
            self._free()
        except Exception:
            pass


ClientCertArg = Union[PathLike, Tuple[PathLike, PathLike], None]


def _client_tls(tls: Optional[ClientTLS], ca: Optional[PathLike], client_cert: ClientCertArg) -> Optional[ClientTLS]:
    """The shorthand arguments of the client calls: ``ca`` (a PEM file of
    the CAs to trust) and ``client_cert`` (a PEM file holding a certificate
    chain and its key, or a ``(cert_file, key_file)`` pair, as
    ``ssl.SSLContext.load_cert_chain`` takes them), as a :class:`ClientTLS`.
    Given with ``tls=`` they are refused (one place says how to trust)."""
    if ca is None and client_cert is None:
        return tls
    if tls is not None:
        raise ValueError("give either tls= or ca=/client_cert=, not both")
    cert: Optional[PathLike] = None
    key: Optional[PathLike] = None
    if isinstance(client_cert, tuple):
        if len(client_cert) != 2:
            raise ValueError("client_cert must be a path or a (cert_file, key_file) pair")
        cert, key = client_cert
    elif client_cert is not None:
        cert = key = client_cert
    return ClientTLS(ca_file=ca, cert_file=cert, key_file=key)


def _server_tls(
    tls: Optional[ServerTLS], certfile: Optional[PathLike], keyfile: Optional[PathLike]
) -> Optional[ServerTLS]:
    """The shorthand arguments of the server calls: ``certfile`` (PEM
    chain, leaf first) and ``keyfile`` (its key; default: ``certfile``, when
    it holds both, as in ``ssl``), as a :class:`ServerTLS`. Given with
    ``tls=`` they are refused."""
    if certfile is None and keyfile is None:
        return tls
    if tls is not None:
        raise ValueError("give either tls= or certfile=/keyfile=, not both")
    if certfile is None:
        raise ValueError("keyfile= needs certfile=")
    return ServerTLS(certfile, keyfile if keyfile is not None else certfile)


def _apply_client(dialer: int, tls: Optional[ClientTLS], proxy: ProxyArg) -> None:
    """The ``tls=`` and ``proxy=`` arguments of the client calls.

    ``proxy``: ``True`` (default) uses the environment's ``http_proxy`` /
    ``https_proxy`` / ``all_proxy`` / ``no_proxy``, as ``websockets``
    does; ``None`` or ``False`` connects directly; a string is a proxy URL
    (``http://``, ``https://``, ``socks5://``, ``socks5h://``, optionally
    with ``user:password@``).
    """
    if tls is not None:
        if not isinstance(tls, ClientTLS):
            raise TypeError(f"tls must be a libws.ClientTLS, not {type(tls).__name__}")
        tls._apply(dialer)
    if proxy is True:
        return
    if proxy is None or proxy is False:
        _check(_ffi.ws_dialer_set_proxy(dialer, b""))
        return
    if not isinstance(proxy, str):
        raise TypeError(f"proxy must be a URL string, True or None, not {type(proxy).__name__}")
    b = proxy.encode("utf-8")
    if b"\0" in b or not b:
        raise ValueError("proxy must be a non-empty URL without NUL")
    _check(_ffi.ws_dialer_set_proxy(dialer, b))


def _apply_server(upgrader: int, tls: Optional[ServerTLS]) -> None:
    if tls is None:
        return
    if not isinstance(tls, ServerTLS):
        raise TypeError(f"tls must be a libws.ServerTLS, not {type(tls).__name__}")
    tls._apply(upgrader)
