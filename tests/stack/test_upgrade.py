"""Upgrade and roll back the compose stack as docs/deploy.md says ("Upgrade").

The previous release is the state of the repository just before the newest change of
``VERSION`` (tests/stack/_stack.py, ``previous_release``). Its images are built and started
from its own files, a lab's data is put in (an admin's study, imported ratings, a tagger's
account, a file in a home), then the documented steps move the checkout to this release:
backup, new files, ``ITAGGER_VERSION``, ``docker compose build && docker compose up -d
--wait``. The data must be intact and every container must run the new release; then the
documented rollback must bring back the old images and the pre-upgrade data.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy._hubstack import HubStack
from tests.stack._engine import docker_engine, ensure_standin_base, why_no_engine
from tests.stack._stack import (
    REPO,
    Stack,
    checkout,
    export_commit,
    previous_release,
    set_env,
    set_up,
    switch_release,
)

pytestmark = [pytest.mark.stack, pytest.mark.postgres, pytest.mark.timeout(2400)]
NEW = (REPO / "VERSION").read_text().strip()
TIMINGS: dict[str, float] = {}

RATINGS_CSV = """image,rater,attribute,value
1,paper-1,coherence,3
2,paper-1,coherence,5
1,paper-2,coherence,4
2,paper-2,coherence,6
"""


@pytest.fixture(scope="module")
def old_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str, Path]]:
    reason = why_no_engine()
    if reason:
        pytest.skip(reason)
    commit, old = previous_release()  # raises, failing the class, when the history is missing
    assert old != NEW, f"the previous release has the same VERSION {NEW}"
    base = tmp_path_factory.mktemp("upgrade")
    with docker_engine() as engine:
        image, _ = ensure_standin_base(engine)
        old_tree = export_commit(commit, base / "release-old")
        stack, _ = set_up(engine, base / "itagger", image, source=old_tree)
        set_env(stack.env_file, ITAGGER_VERSION=old)
        t0 = time.perf_counter()
        try:
            stack.compose("build", timeout=2400)
            stack.compose("up -d --wait", timeout=600)
            TIMINGS[f"build + up {old}"] = time.perf_counter() - t0
            yield stack, old, old_tree
        except Exception:
            print(stack.logs())
            raise
        finally:
            stack.compose("down -v --remove-orphans", check=False, timeout=300)
            vols = engine.docker(
                "volume", "ls", "-q", "--filter", "name=itagger-home-", check=False
            ).stdout.split()
            if vols:
                engine.docker("volume", "rm", "-f", *vols, check=False)
            print("\nupgrade timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in TIMINGS.items()))


def _hub(stack: Stack) -> HubStack:
    env = stack.env
    hub = HubStack(
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
    session = hub.login_session(hub.admin_user, hub.admin_password)
    r = session.post(
        f"{hub.https}/hub/api/users/{hub.admin_user}/tokens",
        json={"note": "upgrade test", "expires_in": 7200},
        headers={"X-XSRFToken": session.cookies.get("_xsrf", "")},
        timeout=30,
    )
    r.raise_for_status()
    hub.api_token = r.json()["token"]
    return hub


def _start(hub: HubStack, user: str) -> None:
    hub.api("POST", f"/users/{user}/server")
    deadline = time.monotonic() + 120
    while not hub.api("GET", f"/users/{user}").json()["servers"].get("", {}).get("ready"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"server of {user} not ready")
        time.sleep(1)


def _lab_state(stack: Stack) -> list[list[str]]:
    return stack.psql(
        "SELECT r.rater, r.attribute, r.value, i.sha256 FROM ratings r JOIN images i ON i.id = r.image_id "
        "ORDER BY r.rater, i.sha256"
    ) + stack.psql("SELECT name FROM studies ORDER BY name")


def _schema(stack: Stack) -> list[list[str]]:
    return stack.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1") + stack.psql(
        "SELECT version_num FROM alembic_version"
    )


def _versions(stack: Stack) -> set[str]:
    names = stack.compose("ps --format '{{.Name}}'").split()
    out = stack.engine.docker(
        "inspect", "--format", '{{index .Config.Labels "org.opencontainers.image.version"}}', *names
    ).stdout
    return set(out.split())


def test_upgrade_keeps_the_data_and_rollback_brings_the_old_release_back(
    old_stack: tuple[Stack, str, Path],
) -> None:
    stack, old, old_tree = old_stack
    hub = _hub(stack)
    hub.signup_and_authorize("tagger-u")
    hub.api("POST", "/users", json={"usernames": ["tagger-u"]})
    hub.api("POST", "/groups/tagger/users", json={"users": ["tagger-u"]})
    _start(hub, hub.admin_user)
    admin = hub.admin_user
    stack.user_exec(admin, "itagger sample /tmp/samples && itagger ingest /tmp/samples")
    stack.user_exec(
        admin,
        'python -c "import itagger_lib as it; ws = it.Workspace(); ws.load_codebook(); '
        "ws.create_study('before-upgrade', raters_per_image=2, seed=3)\"",
    )
    stack.user_exec(admin, f"printf '{RATINGS_CSV}' > /tmp/r.csv && itagger ratings import /tmp/r.csv")
    stack.user_exec(admin, "echo 'kept across releases' > ~/notes.txt")
    before = _lab_state(stack)
    old_schema = _schema(stack)
    assert len(before) == 5 and _versions(stack) == {old}

    # ---- docs/deploy.md, "Upgrade" ----
    t0 = time.perf_counter()
    stack.compose(f"exec -T backup itagger backup /backups/pre-{NEW}")
    switch_release(stack.root, _current_tree(stack.root.parent))
    set_env(stack.env_file, ITAGGER_VERSION=NEW)
    stack.compose("build", timeout=2400)
    stack.compose("up -d --wait", timeout=600)
    TIMINGS[f"upgrade {old} -> {NEW}"] = time.perf_counter() - t0
    assert _versions(stack) == {NEW}
    assert _lab_state(stack) == before
    hub.login_session("tagger-u", hub.passwords["tagger-u"])  # accounts survive the upgrade
    _start(hub, admin)
    assert stack.user_exec(admin, "cat ~/notes.txt && itagger --version").stdout.split()[-1] == NEW
    assert "kept across releases" in stack.user_exec(admin, "cat ~/notes.txt").stdout
    # after the upgrade, work goes on: a new rating on the new release
    stack.user_exec(
        admin,
        "printf 'image,rater,attribute,value\\n3,paper-3,coherence,2\\n' > /tmp/n.csv && "
        "itagger ratings import /tmp/n.csv",
    )
    assert len(_lab_state(stack)) == len(before) + 1

    # ---- docs/deploy.md, "Roll back" ----
    t0 = time.perf_counter()
    stack.compose("stop hub backup")
    stack.compose(f"run --rm --no-deps backup itagger restore /backups/pre-{NEW}", timeout=600)
    switch_release(stack.root, old_tree)
    set_env(stack.env_file, ITAGGER_VERSION=old)
    stack.compose("up -d --wait", timeout=600)
    TIMINGS[f"roll back to {old}"] = time.perf_counter() - t0
    assert _versions(stack) == {old}
    assert _lab_state(stack) == before
    assert _schema(stack) == old_schema  # the new release's tables went with the restore


def _current_tree(folder: Path) -> Path:
    """This working tree's release files (what `git checkout` of the new release gives)."""
    tree = folder / "release-new"
    if not tree.exists():
        checkout(tree)
        for planted in (".venv", ".git", ".test-artifacts", "deploy/backups"):
            shutil.rmtree(tree / planted, ignore_errors=True)
    return tree
