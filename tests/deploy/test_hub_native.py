"""The group deployment end to end, natively on loopback (issue 8).

Postgres, JupyterHub with the project's ``deploy/jupyterhub_config.py`` (local-process
spawner), configurable-http-proxy and nginx with ``deploy/nginx/itagger.conf`` and a
self-signed certificate. Through HTTPS, headless Chromium logs in as two taggers, who land
in the tagging app (Voilà, their group's default URL; kernel websockets through nginx) and
rate an image with the keyboard only, everything on one 1366×768 screen. Then: tagger A,
with the database credentials the hub gave A's server, cannot change tagger B's ratings (the
database refuses); http:// redirects to https://; ``itagger doctor`` passes on this setup and
fails on ``deploy/.env.example`` naming the reason. Screenshots go to
``.test-artifacts/screenshots/``.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from tests.browser._lab import CHROMIUM_ARGS
from tests.deploy._hubflows import SCREENSHOTS, tag_one_image
from tests.deploy._hubstack import CHROMIUM, REPO, HubStack, hub_stack, missing_tools, server_environ

pytestmark = [pytest.mark.hub, pytest.mark.browser, pytest.mark.postgres]


def _wait_ready(stack: HubStack, users: list[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = {u: stack.api("GET", f"/users/{u}").json()["servers"].get("", {}) for u in users}
        if all(s.get("ready") for s in states.values()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"servers not ready after {timeout} s: {states}")
        time.sleep(0.5)


def _doctor(env_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "itagger_lib.cli", "doctor", "--root", str(REPO), "--env", str(env_file)]
    return subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=120)


def test_group_deployment_end_to_end(tmp_path: Path, pg_server_url: str, sample_dir: Path) -> None:
    missing = missing_tools()
    if missing:
        pytest.skip("native hub stack needs: " + "; ".join(missing))
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:6]
    a, b = f"tagger-a{tag}", f"tagger-b{tag}"
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with hub_stack(tmp_path, pg_server_url, sample_dir) as stack:
        timings["stack up"] = time.perf_counter() - t0
        for user in (a, b):
            stack.signup_and_authorize(user)
        stack.api("POST", "/users", json={"usernames": [a, b]})  # the admin adds them ...
        stack.api("POST", "/groups/tagger/users", json={"users": [a, b]})  # ... as taggers
        for user in (a, b):
            stack.api("POST", f"/users/{user}/server")
        _wait_ready(stack, [a, b])
        timings["users + servers"] = time.perf_counter() - t0 - timings["stack up"]

        # ---- two taggers rate through the browser (kernel websockets through nginx) ----
        t1 = time.perf_counter()
        errors: list[str] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                for user, label in ((a, "A"), (b, "B")):
                    tag_one_image(browser, stack, user, label, errors)
            finally:
                browser.close()
        timings["browser tagging"] = time.perf_counter() - t1
        assert not errors, errors
        owner = sa.create_engine(stack.owner_url)
        with owner.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT id, rater, value, source FROM ratings WHERE rater IN (:a, :b) ORDER BY id"),
                {"a": a, "b": b},
            ).all()
        assert sorted(r.rater for r in rows) == sorted([a, b])
        assert all(r.value == 1 and r.source == "human" for r in rows)
        b_rating = next(r.id for r in rows if r.rater == b)

        # ---- A, with the credentials the hub gave A's server, cannot change B's rating ----
        env_a = server_environ(stack.server_pid(a))
        assert env_a["JUPYTERHUB_USER"] == a and env_a["ITAGGER_GROUP"] == "tagger"
        assert env_a["ITAGGER_STORE_READONLY"] == "1" and "OPENAI_API_KEY" not in env_a
        as_a = sa.create_engine(env_a["ITAGGER_DATABASE_URL"])
        try:
            # taggers write no table (they record through the checked functions): every
            # direct write is refused, whatever row it aims at
            attacks = [
                ("UPDATE ratings SET value = 0 WHERE id = :i", {"i": b_rating}),
                (
                    "INSERT INTO ratings (image_id, attribute, codebook_id, rater, source, value,"
                    " mode, study_id, is_repeat, is_gold, repeat_index, rated_at)"
                    " SELECT image_id, attribute, codebook_id, :b, 'human', 0, mode, study_id,"
                    " is_repeat, is_gold, 1, rated_at FROM ratings WHERE rater = :a",
                    {"a": a, "b": b},
                ),
                ("UPDATE ratings SET rater = :b WHERE rater = :a", {"a": a, "b": b}),
                ("DELETE FROM ratings WHERE id = :i", {"i": b_rating}),
            ]
            for sql, params in attacks:
                with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), as_a.begin() as conn:
                    conn.execute(sa.text(sql), params)
        finally:
            as_a.dispose()
        with owner.connect() as conn:
            after = conn.execute(
                sa.text("SELECT rater, value FROM ratings WHERE rater IN (:a, :b) ORDER BY rater"),
                {"a": a, "b": b},
            ).all()
        owner.dispose()
        assert [(r.rater, r.value) for r in after] == [(a, 1), (b, 1)]

        # ---- http:// redirects to https:// --------------------------------------------------
        r = requests.get(f"{stack.http}/hub/login", allow_redirects=False, timeout=10)
        assert r.status_code == 301 and r.headers["location"].startswith("https://"), r.headers

        # ---- itagger doctor: passes on this setup, fails on the example .env ------------------
        t2 = time.perf_counter()
        good = _doctor(
            stack.env_file, "--url", stack.https, "--ca", stack.ca, "--backups", str(stack.backups)
        )
        assert good.returncode == 0, good.stdout + good.stderr
        assert "[PASS] https" in good.stdout and "[PASS] http-redirect" in good.stdout
        bad = _doctor(REPO / "deploy" / ".env.example", "--url", stack.https, "--ca", stack.ca)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "[FAIL] secrets" in bad.stdout
        assert "JUPYTERHUB_COOKIE_SECRET is not set" in bad.stdout
        timings["doctor"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
