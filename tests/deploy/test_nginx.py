"""The project's nginx config, run natively on loopback with a self-signed certificate."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from itagger_lib.ops.doctor import check_https
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
    def do_GET(self) -> None:
        body = f"hub saw proto={self.headers.get('X-Forwarded-Proto')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy(tmp_path):
    hub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    http_port, https_port = _port(), _port()
    self_signed_cert(tmp_path)
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
    r = requests.get(f"https://localhost:{proxy['https']}/hub/login", verify=proxy["ca"], timeout=5)
    assert r.text == "hub saw proto=https"
    assert "max-age=63072000" in r.headers["strict-transport-security"]


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
