"""The Hub reachability probe goes through huggingface_hub's HTTP client, so it honours the proxy
variables: a fake local proxy sees the request (no real network)."""
from __future__ import annotations

import socket
import threading

import pytest

from ovseg.settings import weights as _weights


class _FakeProxy:
    """A one-thread HTTP proxy on 127.0.0.1 that records request lines and answers `reply`."""

    def __init__(self, reply: bytes):
        self.reply, self.lines = reply, []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(10)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            while True:
                conn, _ = self.sock.accept()
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    self.lines.append(data.split(b"\r\n", 1)[0].decode())
                    conn.sendall(self.reply)
        except OSError:
            pass

    def close(self):
        self.sock.close()


def _fresh_client():  # huggingface_hub reads the proxy variables when it makes its client
    from huggingface_hub import utils
    for name in ("close_session", "reset_sessions"):
        if hasattr(utils, name):
            getattr(utils, name)()


@pytest.fixture
def env(monkeypatch):
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy", "http_proxy",
                "all_proxy", "no_proxy", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read at import (the suite runs offline)
    _fresh_client()
    yield monkeypatch
    _fresh_client()


def test_probe_goes_through_http_proxy(env):
    proxy = _FakeProxy(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    try:
        env.setenv("HF_ENDPOINT", "http://hub.invalid")  # unresolvable: only the proxy can answer
        env.setenv("HTTP_PROXY", proxy.url)
        env.setenv("http_proxy", proxy.url)
        assert _weights._hub_reachable(timeout=5) is True
        assert proxy.lines and proxy.lines[0].startswith("HEAD http://hub.invalid/")
    finally:
        proxy.close()


def test_probe_uses_https_proxy_tunnel(env):
    proxy = _FakeProxy(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")  # refuses the tunnel
    try:
        env.setenv("HF_ENDPOINT", "https://huggingface.co")
        env.setenv("HTTPS_PROXY", proxy.url)
        env.setenv("https_proxy", proxy.url)
        assert _weights._hub_reachable(timeout=5) is False  # the proxy said no
        assert proxy.lines and proxy.lines[0].startswith("CONNECT huggingface.co:443")
    finally:
        proxy.close()


def test_probe_offline_makes_no_request(env):
    proxy = _FakeProxy(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    try:
        env.setenv("HF_HUB_OFFLINE", "1")
        env.setenv("HF_ENDPOINT", "http://hub.invalid")
        env.setenv("HTTP_PROXY", proxy.url)
        assert _weights._hub_reachable(timeout=5) is False and proxy.lines == []
    finally:
        proxy.close()


def test_probe_unreachable_is_false(env):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert _weights._hub_reachable(timeout=2) is False
