"""The group stack for real: every image built, `docker compose up` as docs/deploy.md says.

On a Docker engine of the test's own (tests/stack/_engine.py), with the stand-in base image,
in a copy of this checkout that also holds what an admin's checkout holds after following
the docs (``deploy/.env``, ``deploy/certs/privkey.pem``, ``.venv``, ``.git``, backups). The
tests run in order on one stack:

1. the images build, run as their own non-root users, are this release, and hold no secret;
2. TLS: no TLS 1.0/1.1, TLS 1.2 only with forward-secret AEAD suites; the http redirect
   keeps the https port; ACME challenges are served on port 80; no version headers;
3. in headless Chromium the admin logs in, two taggers and a researcher sign up and are
   approved and put in groups; each gets a DockerSpawner container with limits, log rotation
   and only its own database login; the taggers rate in ``02_Tag.ipynb``; every cookie is
   Secure; tagger A cannot change B's rating with SQL from A's own container;
4. the researcher runs a VLM batch against a fake OpenAI-compatible server running as a
   container on the stack's network (taggers get no keys);
5. backup -> ``docker compose down -v`` -> up -> restore: ratings, accounts and homes back;
6. a restart of the whole stack loses nothing; lockouts survive it; a new ADMIN_PASSWORD in
   ``.env`` takes effect;
7. ``itagger doctor`` passes against the live stack (with its self-signed certificate);
8. a certificate from a real ACME server (Debian's ``pebble``, as a container on the stack's
   network) through the proxy's challenge path, and renewal reloads nginx.

Every request goes to 127.0.0.1 or to containers on the networks this test's compose project
made. How long each part took is printed at the end (``-s`` shows it; so does the junit log).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.browser._lab import CHROMIUM_ARGS
from tests.deploy._hubflows import SCREENSHOTS, tag_one_image
from tests.deploy._hubstack import CHROMIUM, HubStack
from tests.stack._engine import docker_engine, ensure_standin_base, why_no_engine
from tests.stack._stack import REPO, Stack, server_name, set_env, set_up

# the first test builds every image: minutes on a new machine
pytestmark = [pytest.mark.stack, pytest.mark.browser, pytest.mark.postgres, pytest.mark.timeout(2400)]

VERSION = (REPO / "VERSION").read_text().strip()
IMAGES = ("db", "proxy", "hub", "singleuser")
TIMINGS: dict[str, float] = {}


class Timer:
    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        TIMINGS[self.name] = TIMINGS.get(self.name, 0.0) + time.perf_counter() - self.t0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    reason = why_no_engine()
    if reason:
        pytest.skip(reason)
    if not Path(CHROMIUM).exists():
        pytest.skip(f"compose stack test drives {CHROMIUM}: apt-get install -y chromium")
    t_start = time.perf_counter()
    with docker_engine() as engine:
        with Timer("stand-in base"):
            base, _ = ensure_standin_base(engine)
        stack, marker = set_up(engine, tmp_path_factory.mktemp("stack") / "itagger", base)
        stack.marker = marker  # type: ignore[attr-defined]
        try:
            with Timer("docker compose build"):
                stack.compose("build", timeout=2400)
            with Timer("docker compose up"):
                stack.compose("up -d --wait", timeout=600)
            yield stack
        except Exception:
            print(stack.logs())
            raise
        finally:
            TIMINGS["whole class"] = time.perf_counter() - t_start
            print("\ncompose stack timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in TIMINGS.items()))
            if os.environ.get("ITAGGER_STACK_KEEP") == "1":  # debugging: leave it all running
                print(f"stack kept: cd {stack.deploy} && DOCKER_HOST={stack.engine.host} docker compose ps")
            else:
                stack.compose("down -v --remove-orphans", check=False, timeout=300)
                stack.engine.docker("rm", "-f", "fakevlm", "pebble", check=False)
                vols = stack.engine.docker(
                    "volume", "ls", "-q", "--filter", "name=itagger-home-", check=False
                )
                if vols.stdout.split():
                    stack.engine.docker("volume", "rm", "-f", *vols.stdout.split(), check=False)


@pytest.fixture(scope="module")
def hub(stack: Stack) -> HubStack:
    """The hub through nginx, with the admin's API token (the helpers of the native hub test)."""
    env = stack.env
    h = HubStack(
        root=stack.root,
        https=stack.https,
        http=stack.http,
        ca=stack.ca,
        env_file=stack.env_file,
        backups=stack.deploy / "backups",
        owner_url="",
        admin_user=env["ADMIN_USER"],
        admin_password=env["ADMIN_PASSWORD"],
    )
    session = h.login_session(h.admin_user, h.admin_password)
    r = session.post(
        f"{h.https}/hub/api/users/{h.admin_user}/tokens",
        json={"note": "stack test", "expires_in": 7200},
        headers={"X-XSRFToken": session.cookies.get("_xsrf", "")},
        timeout=30,
    )
    r.raise_for_status()
    h.api_token = r.json()["token"]
    return h


def _wait_ready(hub: HubStack, user: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        server = hub.api("GET", f"/users/{user}").json()["servers"].get("", {})
        if server.get("ready"):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"server of {user} not ready after {timeout} s: {server}")
        time.sleep(1)


def _start_server(hub: HubStack, user: str) -> None:
    hub.api("POST", f"/users/{user}/server")
    _wait_ready(hub, user)


def _ratings(stack: Stack) -> list[list[str]]:
    return stack.psql(
        "SELECT id, image_id, rater, attribute, value, source, rated_at FROM ratings ORDER BY id"
    )


# ---- 1. images ---------------------------------------------------------------------------------
def test_images_are_this_release_and_run_as_their_own_users(stack: Stack) -> None:
    for image in IMAGES:
        label = stack.engine.docker(
            "image",
            "inspect",
            "--format",
            '{{index .Config.Labels "org.opencontainers.image.version"}} '
            "{{.Config.User}} {{json .Config.Healthcheck}}",
            f"itagger/{image}:{VERSION}",
        ).stdout.split(" ", 2)
        assert label[0] == VERSION, (image, label)
        assert label[1] not in ("", "root", "0"), f"itagger/{image} runs as root"
        if image != "singleuser":  # user servers are watched by the hub, not by a healthcheck
            assert label[2].strip() != "null", f"itagger/{image} has no HEALTHCHECK"
    for image in ("hub", "singleuser"):
        out = stack.engine.docker("run", "--rm", f"itagger/{image}:{VERSION}", "itagger", "--version").stdout
        assert out.split()[-1] == VERSION, out
    running = stack.compose("ps --format json").strip()
    states = json.loads(running) if running.startswith("[") else [json.loads(x) for x in running.splitlines()]
    health = {s["Service"]: s.get("Health", "") for s in states}
    assert health == {"db": "healthy", "hub": "healthy", "proxy": "healthy", "backup": "healthy"}, health
    # the workbench database was created, migrated and secured by the init service alone
    assert stack.psql("SELECT version_num FROM alembic_version")
    assert stack.psql("SELECT to_regclass('public.itagger_role_users') IS NOT NULL") == [["t"]]
    assert stack.compose("ps -a --format '{{.Service}} {{.State}} {{.ExitCode}}' init").split() == [
        "init",
        "exited",
        "0",
    ]


def _needles(stack: Stack) -> dict[bytes, str]:
    env = stack.env
    needles = {stack.marker.encode(): "a planted marker (.venv, .git, backups)"}  # type: ignore[attr-defined]
    for name in (
        "JUPYTERHUB_COOKIE_SECRET",
        "JUPYTERHUB_CRYPT_KEY",
        "CONFIGPROXY_AUTH_TOKEN",
        "ADMIN_PASSWORD",
        "POSTGRES_PASSWORD",
        "ITAGGER_ROLE_PASSWORD_KEY",
    ):
        needles[env[name].encode()] = name
    key_lines = (stack.deploy / "certs" / "privkey.pem").read_text().splitlines()
    needles[key_lines[5].encode()] = "deploy/certs/privkey.pem"
    return needles


def test_no_secret_or_private_file_in_any_image(stack: Stack, tmp_path: Path) -> None:
    """Every layer of every image: no .env, key file, .git or .venv, no secret value or marker."""
    needles = _needles(stack)
    images = [f"itagger/{name}:{VERSION}" for name in (*IMAGES, "acme")]
    stack.compose("--profile acme build acme", timeout=1200)
    found: list[str] = []
    scanned = 0
    with Timer("image scan"):
        save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE, env=stack.engine.env())
        assert save.stdout is not None
        with tarfile.open(fileobj=save.stdout, mode="r|") as outer:
            for layer in outer:
                # a layer shared by several images is stored once; its other names are links
                if not layer.name.endswith("layer.tar") or not layer.isfile():
                    continue
                blob = outer.extractfile(layer)
                assert blob is not None
                with tarfile.open(fileobj=blob, mode="r|") as inner:
                    for member in inner:
                        name = "/" + member.name.lstrip("./")
                        base = name.rsplit("/", 1)[-1]
                        if base in (".env", "privkey.pem") or "/.git/" in name or "/.venv/" in name:
                            found.append(f"{layer.name}: {name}")
                        if not member.isfile() or member.size > 64 << 20:
                            continue
                        data = inner.extractfile(member).read()  # type: ignore[union-attr]
                        scanned += len(data)
                        for needle, what in needles.items():
                            if needle in data:
                                found.append(f"{layer.name}: {name} holds {what}")
        assert save.wait() == 0
    print(f"scanned {scanned / 1e9:.2f} GB of image files for {len(needles)} secrets")
    assert scanned > 100e6
    assert not found, found


# ---- 2. TLS and the edge -----------------------------------------------------------------------
def _handshake(port: int, version: ssl.TLSVersion, ciphers: str = "ALL") -> str | None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_ciphers(ciphers + ":@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = version
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="tagger.test") as tls,
        ):
            return tls.cipher()[0]  # type: ignore[index]
    except (ssl.SSLError, OSError):
        return None


def test_tls_only_modern_forward_secret_suites(stack: Stack) -> None:
    port = stack.ports["https"]
    assert _handshake(port, ssl.TLSVersion.TLSv1) is None
    assert _handshake(port, ssl.TLSVersion.TLSv1_1) is None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    accepted = [name for name in tls12 if _handshake(port, ssl.TLSVersion.TLSv1_2, name)]
    assert accepted, "no TLS 1.2 suite accepted at all"
    for name in accepted:
        assert name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name), accepted
    assert _handshake(port, ssl.TLSVersion.TLSv1_3) is not None


def test_edge_redirects_with_the_port_serves_acme_and_hides_versions(stack: Stack) -> None:
    r = requests.get(f"{stack.http}/hub/login?x=1", allow_redirects=False, timeout=10)
    assert r.status_code == 301
    assert r.headers["location"] == f"https://127.0.0.1:{stack.ports['https']}/hub/login?x=1"
    token = secrets.token_urlsafe(16)
    stack.engine.docker(
        "run", "--rm", "--network", "none", "-v", "itagger_acme_webroot:/var/www/acme",
        "--entrypoint", "bash", f"itagger/acme:{VERSION}", "-c",
        f"d=/var/www/acme/.well-known/acme-challenge && mkdir -p $d && echo {token} > $d/{token}",
    )  # fmt: skip
    r = requests.get(f"{stack.http}/.well-known/acme-challenge/{token}", allow_redirects=False, timeout=10)
    assert r.status_code == 200 and r.text.strip() == token
    r = requests.get(f"{stack.https}/hub/login", verify=stack.ca, timeout=10)
    assert r.headers["server"] == "nginx", r.headers
    assert not any(k.lower() == "x-jupyterhub-version" for k in r.headers), r.headers


# ---- 3. people, servers, tagging ---------------------------------------------------------------
PEOPLE = {"tagger-a": "tagger", "tagger-b": "tagger", "researcher-r": "researcher"}


def _signup_in_browser(page: Any, hub: HubStack, user: str) -> str:
    password = secrets.token_urlsafe(18)
    page.goto(f"{hub.https}/hub/signup")
    page.fill("#username_input", user)
    if page.locator("#email_input").count():
        page.fill("#email_input", f"{user}@example.org")
    page.fill("#password_input", password)
    page.fill("#password_confirmation_input", password)
    page.click("#signup_submit")
    page.get_by_text("sent to the admin").wait_for(timeout=30_000)
    hub.passwords[user] = password
    return password


def test_people_sign_up_are_approved_and_taggers_rate(stack: Stack, hub: HubStack) -> None:
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    cookies: list[dict[str, Any]] = []
    with Timer("browser: sign-up, approval, tagging"), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(ignore_https_errors=True, viewport={"width": 1366, "height": 768})
            page = context.new_page()
            for user in PEOPLE:
                _signup_in_browser(page, hub, user)
            # the admin logs in and approves them on NativeAuthenticator's page
            page.goto(f"{hub.https}/hub/login?next=/hub/authorize")
            page.fill("#username_input", hub.admin_user)
            page.fill("#password_input", hub.admin_password)
            page.press("#password_input", "Enter")
            page.wait_for_url("**/hub/authorize", timeout=30_000)
            for user in PEOPLE:
                with page.expect_navigation(timeout=30_000):  # back to /hub/authorize#<user>
                    page.locator(f"a[href$='authorize/{user}']").click()
                row = page.locator("tr", has=page.locator(f"a[href$='authorize/{user}']"))
                assert "Unauthorize" in row.inner_text(), row.inner_text()
            page.screenshot(path=str(SCREENSHOTS / "stack-authorize.png"), full_page=True)
            cookies.extend(context.cookies())
            context.close()
            for user, group in PEOPLE.items():
                if _missing(hub, user):  # a hub user exists only after a first login
                    hub.api("POST", "/users", json={"usernames": [user]})
                hub.api("POST", f"/groups/{group}/users", json={"users": [user]})
            with Timer("spawn admin + set-up"):
                _start_server(hub, hub.admin_user)
                _admin_sets_up_a_study(stack, hub.admin_user)
            for user in ("tagger-a", "tagger-b"):
                with Timer("spawn + tag (per tagger)"):
                    _start_server(hub, user)
                    tag_one_image(browser, hub, user, f"stack-{user}", errors, cookies)
        finally:
            browser.close()
    assert not errors, errors
    rows = stack.psql("SELECT rater, value, source FROM ratings WHERE rater LIKE 'tagger-%' ORDER BY rater")
    assert rows == [["tagger-a", "1", "human"], ["tagger-b", "1", "human"]], rows
    insecure = [c["name"] for c in cookies if not c["secure"]]
    assert cookies and not insecure, f"cookies without Secure: {insecure}"


def _missing(hub: HubStack, user: str) -> bool:
    r = requests.get(
        f"{hub.https}/hub/api/users/{user}",
        headers={"Authorization": f"token {hub.api_token}"},
        verify=hub.ca,
        timeout=30,
    )
    return r.status_code == 404


def _admin_sets_up_a_study(stack: Stack, admin: str) -> None:
    """What an admin does in their own server before the taggers come."""
    stack.user_exec(admin, "itagger sample /tmp/samples && itagger ingest /tmp/samples --collection pilot")
    stack.user_exec(
        admin,
        'python -c "import itagger_lib as it; ws = it.Workspace(); ws.load_codebook(); '
        "ws.create_study('stack-pilot', raters_per_image=2, seed=7)\"",
    )
    stack.user_exec(admin, "itagger vlm prices set openai fake-vision 0.15 0.60")
    stack.user_exec(admin, "echo 'my own notes' > ~/notes.txt")


def test_user_containers_have_limits_log_rotation_and_their_own_environment(stack: Stack) -> None:
    for user, group in (("tagger-a", "tagger"), ("tagger-b", "tagger")):
        cfg = json.loads(stack.engine.docker("inspect", f"jupyter-{server_name(user)}").stdout)[0]
        host = cfg["HostConfig"]
        assert host["Memory"] == 1536 * 2**20, host["Memory"]
        assert host["CpuQuota"] / host["CpuPeriod"] == 1.5
        assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "5", "max-size": "10m"}}
        assert "no-new-privileges" in host["SecurityOpt"]
        env = dict(item.split("=", 1) for item in cfg["Config"]["Env"])
        assert env["ITAGGER_GROUP"] == group and env["ITAGGER_STORE_READONLY"] == "1"
        assert "OPENAI_API_KEY" not in env and "OPENAI_BASE_URL" not in env
        assert env["ITAGGER_DATABASE_URL"].startswith(f"postgresql+psycopg://{env['ITAGGER_DB_ROLE']}:")
        assert stack.env["POSTGRES_PASSWORD"] not in json.dumps(cfg)
        mounts = {m["Destination"]: m for m in cfg["Mounts"]}
        assert mounts["/srv/itagger/store"]["RW"] is False
        assert mounts["/home/jovyan"]["Name"] == f"itagger-home-{server_name(user)}"


def test_a_tagger_cannot_change_another_raters_rating_from_their_own_container(stack: Stack) -> None:
    b_id = stack.psql("SELECT id FROM ratings WHERE rater = 'tagger-b'")[0][0]
    # taggers write no table (they record through the checked functions of 0005_roles)
    script = f"""
import os, sqlalchemy as sa
engine = sa.create_engine(os.environ["ITAGGER_DATABASE_URL"])
for sql in ("UPDATE ratings SET value = 0 WHERE id = {b_id}",
            "UPDATE ratings SET rater = 'tagger-b' WHERE rater = 'tagger-a'",
            "DELETE FROM ratings WHERE id = {b_id}"):
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
        print("ALLOWED", sql)
    except Exception as exc:
        print("refused:", type(exc).__name__, str(exc).splitlines()[0])
"""
    out = stack.user_exec("tagger-a", f"python - <<'EOF'\n{script}\nEOF").stdout
    assert "ALLOWED" not in out, out
    assert out.count("permission denied for table ratings") == 3, out  # a plain engine: psycopg's words
    assert stack.psql(f"SELECT rater, value FROM ratings WHERE id = {b_id}") == [["tagger-b", "1"]]


# ---- 4. a VLM batch ------------------------------------------------------------------------------
def test_researcher_runs_a_vlm_batch_against_a_server_on_the_stack_network(
    stack: Stack, hub: HubStack
) -> None:
    stack.engine.docker(
        "run", "-d", "--no-healthcheck", "--name", "fakevlm",
        "--network", "itagger_backend", "--network-alias", "fakevlm",
        "-v", f"{REPO / 'tests' / 'fakes'}:/fakes:ro", "--entrypoint", "python3", f"itagger/hub:{VERSION}",
        "/fakes/vlm_server.py", "--host", "0.0.0.0", "--port", "8000", "--forever",
    )  # fmt: skip
    # the admin gives researchers the endpoint and a key in deploy/.env, then restarts the hub
    set_env(stack.env_file, OPENAI_BASE_URL="http://fakevlm:8000/v1", OPENAI_API_KEY="sk-test-" + "f" * 24)
    stack.compose("up -d --wait hub")
    with Timer("spawn researcher + VLM batch"):
        _start_server(hub, "researcher-r")
        env = stack.container_env(f"jupyter-{server_name('researcher-r')}")
        assert env["OPENAI_BASE_URL"] == "http://fakevlm:8000/v1" and env["ITAGGER_GROUP"] == "researcher"
        out = stack.user_exec(
            "researcher-r",
            "itagger vlm rate --provider openai --model fake-vision -a coherence -a complexity --budget 1",
        ).stdout
    assert "failed" not in out.lower() or " 0 failed" in out.lower(), out
    rows = stack.psql("SELECT count(*), count(DISTINCT image_id) FROM ratings WHERE source = 'vlm'")
    assert rows == [["24", "12"]], (rows, out)


# ---- 5. backup, disaster, restore --------------------------------------------------------------------
def test_backup_down_up_restore_brings_everything_back(stack: Stack, hub: HubStack) -> None:
    before = _ratings(stack)
    users_before = sorted(u["name"] for u in hub.api("GET", "/users").json())
    with Timer("backup"):
        out = stack.compose("exec -T backup itagger backup /backups/before-disaster")
    assert "hub database" in out and "home volumes" in out, out
    manifest = json.loads((stack.deploy / "backups" / "before-disaster" / "manifest.json").read_text())
    assert "hub/jupyterhub.sqlite" in manifest["files"]
    assert f"homes/itagger-home-{server_name('tagger-a')}.tar" in manifest["files"]
    with Timer("down -v, up, restore"):
        stack.compose("down -v", timeout=300)
        homes = stack.engine.docker("volume", "ls", "-q", "--filter", "name=itagger-home-").stdout.split()
        stack.engine.docker("volume", "rm", *homes)
        stack.compose("up -d --wait", timeout=600)
        assert _ratings(stack) == []
        # docs/deploy.md, "Restore"
        stack.compose("stop hub")
        out = stack.compose("run --rm --no-deps backup itagger restore /backups/before-disaster", timeout=600)
        stack.compose("up -d --wait", timeout=600)
    assert "home volumes" in out, out
    assert _ratings(stack) == before
    users_after = sorted(u["name"] for u in hub.api("GET", "/users").json())
    assert users_after == users_before
    hub.login_session("tagger-a", hub.passwords["tagger-a"])  # accounts and approvals are back
    _start_server(hub, hub.admin_user)
    assert stack.user_exec(hub.admin_user, "cat ~/notes.txt").stdout.strip() == "my own notes"


# ---- 6. restarts --------------------------------------------------------------------------------------
def test_a_restart_loses_nothing_keeps_lockouts_and_applies_a_new_admin_password(
    stack: Stack, hub: HubStack
) -> None:
    before = _ratings(stack)
    for _ in range(5):  # tagger-b mistypes the password five times: locked out for 10 minutes
        with pytest.raises(RuntimeError, match="failed"):
            hub.login_session("tagger-b", "wrong-" + secrets.token_hex(4))
    with Timer("restart of every service"):
        stack.compose("restart", timeout=300)
        stack.compose("up -d --wait", timeout=600)
    with pytest.raises(RuntimeError, match="failed"):  # still locked out: the count is in the hub's database
        hub.login_session("tagger-b", hub.passwords["tagger-b"])
    hub.login_session("tagger-a", hub.passwords["tagger-a"])  # others are not
    # the admin rotates the admin password in .env; down and up recreate every container
    new_password = secrets.token_hex(24)
    set_env(stack.env_file, ADMIN_PASSWORD=new_password)
    with Timer("down + up of the whole stack"):
        stack.compose("down", timeout=300)
        stack.compose("up -d --wait", timeout=600)
    assert _ratings(stack) == before
    with pytest.raises(RuntimeError, match="failed"):
        hub.login_session(hub.admin_user, hub.admin_password)
    hub.admin_password = new_password
    hub.login_session(hub.admin_user, new_password)


# ---- 7. doctor -------------------------------------------------------------------------------------
def test_doctor_passes_against_the_live_stack(stack: Stack) -> None:
    # docs/deploy.md, "Check": run from deploy/ on the Docker host
    cmd = (
        f"{sys.executable} -m itagger_lib.cli doctor --url https://127.0.0.1:{stack.ports['https']} "
        "--ca certs/fullchain.pem --backups backups"
    )
    out = stack.sh(cmd, check=False)
    failed = [line for line in out.splitlines() if line.startswith("[FAIL]")]
    assert not failed, out
    for name in (
        "tls-ciphers",
        "secure-cookies",
        "certificate-expiry",
        "env-file",
        "running-images",
        "https",
    ):
        assert re.search(rf"\[PASS\] {name}:", out), out


# ---- 8. Let's Encrypt, played by pebble ------------------------------------------------------------
PEBBLE_CONFIG = {
    "pebble": {
        "listenAddress": "0.0.0.0:14000",
        "managementListenAddress": "0.0.0.0:15000",
        "certificate": "/pebble/cert.pem",
        "privateKey": "/pebble/key.pem",
        "httpPort": 8080,
        "tlsPort": 8443,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }
}


@pytest.mark.skipif(
    shutil.which("pebble") is None, reason="ACME test needs Debian's pebble: apt-get install pebble"
)
def test_acme_certificate_through_the_challenge_path_and_renewal_reloads_nginx(
    stack: Stack, tmp_path: Path
) -> None:
    folder = tmp_path / "pebble"
    folder.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=pebble",
         "-addext", "subjectAltName=DNS:pebble",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    (folder / "config.json").write_text(json.dumps(PEBBLE_CONFIG))
    for f in folder.iterdir():
        f.chmod(0o644)
    stack.engine.docker(
        "run", "-d", "--no-healthcheck", "--name", "pebble",
        "--network", "itagger_frontend", "--network-alias", "pebble",
        "-e", "PEBBLE_VA_NOSLEEP=1", "-e", "PEBBLE_WFE_NONCEREJECT=0",
        "-v", f"{shutil.which('pebble')}:/usr/local/bin/pebble:ro", "-v", f"{folder}:/pebble:ro",
        "--entrypoint", "pebble", f"itagger/proxy:{VERSION}", "-config", "/pebble/config.json",
    )  # fmt: skip
    override = stack.deploy / "docker-compose.pebble.yml"
    override.write_text(
        "services:\n  acme:\n    environment:\n      REQUESTS_CA_BUNDLE: /pebble/cert.pem\n"
        f"    volumes:\n      - {folder}:/pebble:ro\n  proxy:\n    environment:\n"
        "      ITAGGER_CERT_CHECK_SECONDS: '2'\n"
    )
    set_env(
        stack.env_file,
        ITAGGER_ACME_EMAIL="admin@example.org",
        ITAGGER_ACME_SERVER="https://pebble:14000/dir",
    )
    files = "-f docker-compose.yml -f docker-compose.pebble.yml --profile acme"
    with Timer("ACME (pebble)"):
        stack.compose(f"{files} up -d --wait proxy", timeout=300)
        stack.compose(f"{files} run --rm acme --once", timeout=300)
        first = _served_issuer_and_serial(stack, "Pebble")
        stack.compose(
            # what the service's loop runs, forced, and without certbot's random wait of up to
            # 8 minutes that spreads unattended renewals over time
            f"{files} run --rm --entrypoint certbot acme renew --force-renewal --no-random-sleep-on-renew "
            "--config-dir /etc/letsencrypt --work-dir /var/lib/letsencrypt --logs-dir /var/log/letsencrypt "
            "--webroot --webroot-path /var/www/acme",
            timeout=300,
        )
        second = _served_issuer_and_serial(stack, "Pebble", not_serial=first[1])
    assert "Pebble" in first[0] and second[1] != first[1]


def _served_issuer_and_serial(stack: Stack, issuer: str, not_serial: int | None = None) -> tuple[str, int]:
    from cryptography import x509

    deadline = time.monotonic() + 60
    while True:
        pem = ssl.get_server_certificate(("127.0.0.1", stack.ports["https"]))
        cert = x509.load_pem_x509_certificate(pem.encode())
        name = cert.issuer.rfc4514_string()
        if issuer in name and cert.serial_number != not_serial:
            return name, cert.serial_number
        if time.monotonic() > deadline:
            raise AssertionError(f"the proxy still serves {name} (serial {cert.serial_number})")
        time.sleep(1)
