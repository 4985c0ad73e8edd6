"""``itagger doctor``'s checks of the live https endpoint: TLS, certificate, redirect, cookies.

Each function takes the public URL (and the CA bundle to trust) and returns
:class:`~itagger_lib.ops.doctor.Check` results; nothing here reads the repository.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import ssl
import warnings
from urllib.parse import urlsplit

from itagger_lib.ops.checks import Check

MIN_CERT_DAYS = 14
#: TLS 1.2 suites a client may offer that the endpoint must refuse: static RSA key exchange
#: (no forward secrecy) and CBC with SHA-1/SHA-256 MACs.
WEAK_TLS12_CIPHERS = (
    "AES128-SHA:AES256-SHA:AES128-SHA256:AES256-SHA256:AES128-GCM-SHA256:AES256-GCM-SHA384:"
    "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:"
    "ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:DHE-RSA-AES128-SHA:DHE-RSA-AES256-SHA"
)


def check_https(url: str, verify_tls: bool | str = True, http_url: str | None = None) -> list[Check]:
    """HTTPS with HSTS at ``url``, and a redirect to https at ``http_url``.

    ``http_url`` defaults to ``url``'s host on port 80 (``https://lab.example.edu:8443`` ->
    ``http://lab.example.edu``); pass it when the plain-HTTP server listens elsewhere.
    """
    import requests

    host = re.sub(r"^https?://", "", url).rstrip("/")
    plain = (
        re.sub(r"^https?://", "", http_url).rstrip("/")
        if http_url
        else re.sub(r":\d+$", "", host.split("/")[0])
    )
    checks = []
    try:
        r = requests.get(f"https://{host}/hub/login", timeout=10, verify=verify_tls)
        hsts = "strict-transport-security" in {k.lower() for k in r.headers}
        checks.append(
            Check(
                "https",
                r.ok and hsts,
                f"https://{host}: {r.status_code}, HSTS {'on' if hsts else 'missing'}",
                "serve TLS with deploy/nginx/itagger.conf (HSTS header) and a valid certificate",
            )
        )
    except requests.RequestException as exc:
        checks.append(
            Check("https", False, f"https://{host}: {type(exc).__name__}", "check nginx and the certificate")
        )
    try:
        r = requests.get(f"http://{plain}/hub/login", timeout=10, allow_redirects=False)
        loc = r.headers.get("location", "")
        ok = r.status_code in (301, 302, 307, 308) and loc.startswith("https://")
        checks.append(
            Check(
                "http-redirect",
                ok,
                f"http://{plain}: {r.status_code} -> {loc or 'no redirect'}",
                "keep the port-80 server block that returns 301 to https",
            )
        )
    except requests.RequestException as exc:
        checks.append(
            Check(
                "http-redirect",
                False,
                f"http://{plain}: {type(exc).__name__}",
                "serve port 80 with a redirect",
            )
        )
    return checks


def _tls_handshake(host: str, port: int, context: ssl.SSLContext) -> tuple[str, int] | None:
    """(protocol, cipher) of a handshake with ``context``, or None when the server refuses."""
    try:
        with (
            socket.create_connection((host, port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cipher = tls.cipher()
            return (tls.version() or "", 0) if cipher is None else (cipher[0], 1)
    except (ssl.SSLError, OSError):
        return None


def _client_context(
    maximum: ssl.TLSVersion, minimum: ssl.TLSVersion, ciphers: str | None = None
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # OpenSSL 3 refuses TLS < 1.2 at its default security level; the probe must be able to offer it
    ctx.set_ciphers((ciphers or "ALL") + ":@SECLEVEL=0")
    with warnings.catch_warnings():  # offering TLS 1.0/1.1 is the point of the probe
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version, ctx.maximum_version = minimum, maximum
    return ctx


def check_tls(url: str, verify_tls: bool | str = True) -> list[Check]:
    """Old protocols and weak TLS 1.2 suites refused, a certificate valid 14 more days, Secure cookies."""
    import requests

    parts = urlsplit(url if "://" in url else f"https://{url}")
    host, port = parts.hostname or "", parts.port or 443
    checks = []
    accepted = []
    for name, version in (("TLS 1.0", ssl.TLSVersion.TLSv1), ("TLS 1.1", ssl.TLSVersion.TLSv1_1)):
        if _tls_handshake(host, port, _client_context(version, version)) is not None:
            accepted.append(name)
    weak = _tls_handshake(
        host, port, _client_context(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2, WEAK_TLS12_CIPHERS)
    )
    if weak is not None:
        accepted.append(f"TLS 1.2 {weak[0]}")
    checks.append(
        Check(
            "tls-ciphers",
            not accepted,
            f"{host}:{port} accepts {', '.join(accepted)}"
            if accepted
            else f"{host}:{port}: TLS 1.0/1.1 and non-forward-secret or CBC TLS 1.2 suites refused",
            "use deploy/nginx/itagger.conf.template's ssl_protocols and ssl_ciphers",
        )
    )
    try:
        ctx = _client_context(ssl.TLSVersion.MAXIMUM_SUPPORTED, ssl.TLSVersion.TLSv1_2)
        with (
            socket.create_connection((host, port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        not_after = _not_after(der or b"")
        days = (not_after - dt.datetime.now(dt.UTC)).days
        checks.append(
            Check(
                "certificate-expiry",
                days >= MIN_CERT_DAYS,
                f"certificate of {host}:{port} expires {not_after:%Y-%m-%d} ({days} days)",
                "renew it: the acme service renews Let's Encrypt certificates by itself "
                "(docker compose --profile acme up -d); replace a self-signed one in ITAGGER_CERTS_DIR",
            )
        )
    except (OSError, ValueError) as exc:
        checks.append(
            Check("certificate-expiry", False, f"{host}:{port}: {exc}", "check nginx and the certificate")
        )
    try:
        r = requests.get(f"https://{host}:{port}/hub/login", timeout=10, verify=verify_tls)
        raw_cookies = r.raw.headers.getlist("Set-Cookie")
        insecure = [c.split("=", 1)[0] for c in raw_cookies if not cookie_is_secure(c)]
        checks.append(
            Check(
                "secure-cookies",
                bool(raw_cookies) and not insecure,
                f"cookies without Secure: {', '.join(insecure)}"
                if insecure
                else f"{len(raw_cookies)} cookie(s) set by /hub/login, all Secure",
                "keep proxy_cookie_flags in the nginx site and the hub's cookie_options",
            )
        )
    except requests.RequestException as exc:
        checks.append(
            Check("secure-cookies", False, f"https://{host}:{port}: {type(exc).__name__}", "check nginx")
        )
    return checks


def cookie_is_secure(set_cookie: str) -> bool:
    """Whether a ``Set-Cookie`` header value carries the ``Secure`` attribute."""
    return "secure" in (a.strip().lower() for a in set_cookie.split(";")[1:])


def _not_after(der: bytes) -> dt.datetime:
    """The notAfter time of a DER certificate (via the ``cryptography`` package)."""
    from cryptography import x509

    return x509.load_der_x509_certificate(der).not_valid_after_utc
