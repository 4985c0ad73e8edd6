"""The hub's authenticator on a real hub database (SQLite), without a running hub.

Lockouts per user name *and* address, kept in the database across a restart (a new
authenticator on the same file); the administrator's password follows ``ADMIN_PASSWORD``;
an unknown user name costs the same bcrypt check as a wrong password.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from types import SimpleNamespace

import bcrypt
import pytest

pytest.importorskip("nativeauthenticator")
from jupyterhub import orm

from itagger_lib.ops.hub_auth import ItaggerAuthenticator

ADMIN = "boss"


def _auth(db_file: Path, admin_password: str) -> ItaggerAuthenticator:
    session = orm.new_session_factory(f"sqlite:///{db_file}")()
    return ItaggerAuthenticator(
        db=session,
        bootstrap_admin_user=ADMIN,
        bootstrap_admin_password=admin_password,
        allowed_failed_logins=3,
        seconds_before_next_try=600,
    )


def _login(auth: ItaggerAuthenticator, user: str, password: str, address: str) -> str | None:
    handler = SimpleNamespace(request=SimpleNamespace(remote_ip=address))
    return asyncio.run(auth.authenticate(handler, {"username": user, "password": password}))


@pytest.fixture
def hub_db(tmp_path: Path) -> Path:
    return tmp_path / "jupyterhub.sqlite"


def test_admin_is_created_approved_and_follows_a_changed_password(hub_db: Path) -> None:
    first, second = secrets.token_hex(16), secrets.token_hex(16)
    auth = _auth(hub_db, first)
    assert _login(auth, ADMIN, first, "10.0.0.1") == ADMIN
    auth = _auth(hub_db, second)  # the admin edited ADMIN_PASSWORD in .env and restarted the hub
    assert _login(auth, ADMIN, first, "10.0.0.1") is None
    assert _login(auth, ADMIN, second, "10.0.0.1") == ADMIN


def test_lockout_is_per_address_and_survives_a_restart(hub_db: Path) -> None:
    password = secrets.token_hex(16)
    auth = _auth(hub_db, password)
    for _ in range(3):  # someone guesses the admin's password from 10.6.6.6
        assert _login(auth, ADMIN, "guess-" + secrets.token_hex(4), "10.6.6.6") is None
    assert _login(auth, ADMIN, password, "10.6.6.6") is None  # locked out there
    assert _login(auth, ADMIN, password, "10.0.0.1") == ADMIN  # the admin, elsewhere, is not
    restarted = _auth(hub_db, password)
    assert restarted.is_locked_out(ADMIN, "10.6.6.6")
    assert _login(restarted, ADMIN, password, "10.6.6.6") is None
    # after the window, the count starts afresh
    _, last = restarted._failures(ADMIN, "10.6.6.6")
    assert not restarted.is_locked_out(ADMIN, "10.6.6.6", now=last + 601)


def test_a_success_clears_the_count_of_that_address(hub_db: Path) -> None:
    password = secrets.token_hex(16)
    auth = _auth(hub_db, password)
    for _ in range(2):
        _login(auth, ADMIN, "wrong", "10.0.0.1")
    assert _login(auth, ADMIN, password, "10.0.0.1") == ADMIN
    assert auth._failures(ADMIN, "10.0.0.1") == (0, 0.0)


def test_an_unknown_user_costs_a_bcrypt_check_like_a_known_one(
    hub_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = _auth(hub_db, secrets.token_hex(16))
    checks: list[int] = []
    real_checkpw, real_hashpw = bcrypt.checkpw, bcrypt.hashpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda pw, h: checks.append(1) or real_checkpw(pw, h))
    monkeypatch.setattr(bcrypt, "hashpw", lambda pw, salt: checks.append(1) or real_hashpw(pw, salt))
    assert _login(auth, "nobody-here", "whatever", "10.0.0.2") is None
    unknown = len(checks)
    checks.clear()
    assert _login(auth, ADMIN, "whatever", "10.0.0.2") is None
    assert unknown == len(checks) == 1
