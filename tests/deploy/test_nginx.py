"""The project's nginx config, run natively on loopback with a self-signed certificate."""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from itagger_lib.ops.endpoint import check_https, check_tls, cookie_is_secure
from tests.deploy._hubstack import NGINX, render_nginx, self_signed_cert

pytestmark = [
    pytest.mark.hub,
    pytest.mark.skipif(
        not Path(NGINX).exists(),
        reason="nginx not installed: apt-get install nginx-light (or set up nginx) to run the hub class",
    ),
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Hub(http.server.BaseHTTPRequestHandler):
    """Stands in for JupyterHub: a cookie without Secure, its version header, an echo."""

    def do_GET(self) -> None:
        body = (
            f"hub saw proto={self.headers.get('X-Forwarded-Proto')} "
            f"for={self.headers.get('X-Forwarded-For')} real={self.headers.get('X-Real-IP')}"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", "jupyterhub-session-id=abc; Path=/; HttpOnly")
        self.send_header("X-JupyterHub-Version", "6.1.1")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy(tmp_path):
    hub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    http_port, https_port = _port(), _port()
    self_signed_cert(tmp_path, days=2)
    conf = render_nginx(tmp_path, tmp_path, hub.server_port, http_port, https_port)
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp_path)], stderr=subprocess.DEVNULL)
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", https_port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield {"http": http_port, "https": https_port, "ca": str(tmp_path / "fullchain.pem")}
    proc.terminate()
    proc.wait(10)
    hub.shutdown()
    hub.server_close()


def test_http_redirects_and_https_reaches_the_hub_with_hsts(proxy):
    r = requests.get(f"http://127.0.0.1:{proxy['http']}/hub/login", allow_redirects=False, timeout=5)
    assert r.status_code == 301 and r.headers["location"].startswith("https://")
    r = requests.get(
        f"https://localhost:{proxy['https']}/hub/login",
        verify=proxy["ca"],
        headers={"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "http"},
        timeout=5,
    )
    # what a client claims is replaced by what nginx saw (lockouts are kept per address)
    assert r.text == "hub saw proto=https for=127.0.0.1 real=127.0.0.1"
    assert "max-age=63072000" in r.headers["strict-transport-security"]


def test_redirect_keeps_the_https_port_and_acme_challenges_are_served(proxy, tmp_path):
    r = requests.get(f"http://127.0.0.1:{proxy['http']}/hub/login?next=%2F", allow_redirects=False, timeout=5)
    assert r.headers["location"] == f"https://127.0.0.1:{proxy['https']}/hub/login?next=%2F"
    challenge = tmp_path / "acme" / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True)
    (challenge / "tok3n").write_text("tok3n.thumbprint")
    r = requests.get(f"http://127.0.0.1:{proxy['http']}/.well-known/acme-challenge/tok3n", timeout=5)
    assert r.status_code == 200 and r.text == "tok3n.thumbprint"
    r = requests.get(f"http://127.0.0.1:{proxy['http']}/.well-known/acme-challenge/nope", timeout=5)
    assert r.status_code == 404


def test_cookies_become_secure_and_versions_are_hidden(proxy):
    r = requests.get(f"https://localhost:{proxy['https']}/hub/login", verify=proxy["ca"], timeout=5)
    assert cookie_is_secure(r.headers["set-cookie"]), r.headers["set-cookie"]
    assert "x-jupyterhub-version" not in {k.lower() for k in r.headers}
    assert r.headers["server"] == "nginx"


def test_tls12_offers_only_forward_secret_aead_suites(proxy):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    offered = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    accepted = [name for name in offered if _tls12(proxy["https"], name)]
    assert accepted and all(n.startswith("ECDHE-") and ("GCM" in n or "CHACHA20" in n) for n in accepted), (
        accepted
    )
    checks = {c.name: c for c in check_tls(f"https://localhost:{proxy['https']}", verify_tls=proxy["ca"])}
    assert checks["tls-ciphers"].passed, checks["tls-ciphers"].detail
    assert checks["secure-cookies"].passed, checks["secure-cookies"].detail
    assert not checks["certificate-expiry"].passed  # this test's certificate lives 2 days
    assert (
        "(1 days)" in checks["certificate-expiry"].detail or "(2 days)" in checks["certificate-expiry"].detail
    )


def _tls12(port: int, cipher: str) -> bool:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_ciphers(cipher + ":@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw):
            return True
    except (ssl.SSLError, OSError):
        return False


def test_doctor_flags_a_server_that_accepts_static_rsa_and_old_tls(tmp_path):
    """A TLS server configured the old way (any suite, TLS 1.0 up) fails the tls-ciphers check."""
    cert = self_signed_cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, tmp_path / "privkey.pem")
    server_ctx.set_ciphers("AES128-SHA:AES128-GCM-SHA256:@SECLEVEL=0")
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        check = next(
            c for c in check_tls(f"https://127.0.0.1:{port}", verify_tls=False) if c.name == "tls-ciphers"
        )
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert not check.passed
    assert "TLS 1.2 AES128" in check.detail, check.detail


def test_tls_below_1_2_is_refused(proxy):
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{proxy['https']}", "-tls1_1"],
        input="",
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert done.returncode != 0


def test_doctor_https_check_passes_through_the_proxy(proxy):
    https = check_https(f"https://localhost:{proxy['https']}", verify_tls=proxy["ca"])[0]
    assert https.passed, https.detail


def test_doctor_redirect_check_uses_the_plain_http_server(proxy):
    url = f"https://localhost:{proxy['https']}"
    https, redirect = check_https(url, proxy["ca"], http_url=f"http://localhost:{proxy['http']}")
    assert https.passed and redirect.passed, redirect.detail
    # without http_url the redirect is looked for on port 80 of the same host, not on the TLS port
    assert check_https(url, proxy["ca"])[1].detail.startswith("http://localhost:")
    assert not check_https(url, proxy["ca"])[1].detail.startswith(f"http://localhost:{proxy['https']}")
