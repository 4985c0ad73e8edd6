"""The hub's login: NativeAuthenticator as the group stack runs it.

Imported by ``deploy/jupyterhub_config.py`` only (it needs the ``hub`` extra). On top of
NativeAuthenticator (sign-up, admin approval, bcrypt password hashes in the hub database):

- **The administrator follows ``deploy/.env``.** ``ADMIN_USER`` is created at the first start;
  when ``ADMIN_PASSWORD`` changes, the next start sets the new password (NativeAuthenticator
  alone ignores the change, so a leaked admin password could not be rotated from ``.env``).
- **Lockouts survive a restart and are kept per user name and client address.** After
  ``allowed_failed_logins`` failures from one address, that user name is refused *from that
  address* for ``seconds_before_next_try``; the count lives in the hub database
  (``itagger_login_failures``), not in memory. Someone guessing the admin's password from
  elsewhere therefore cannot lock the admin out, and a hub restart does not reset the count.
  The address is the one nginx saw (it sets ``X-Real-IP``; JupyterHub trusts it).
- **Login time does not tell which user names exist.** An unknown name costs the same bcrypt
  check as a wrong password.
"""

from __future__ import annotations

import time
from typing import Any

import bcrypt
import sqlalchemy as sa
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator import handlers as native_handlers
from nativeauthenticator.orm import UserInfo
from traitlets import Unicode

__all__ = ["ItaggerAuthenticator"]

_FAILURES_TABLE = """CREATE TABLE IF NOT EXISTS itagger_login_failures (
    username VARCHAR(255) NOT NULL,
    address VARCHAR(64) NOT NULL,
    failures INTEGER NOT NULL,
    last_failure FLOAT NOT NULL,
    PRIMARY KEY (username, address))"""


if not hasattr(native_handlers.LoginHandler, "statsd"):
    # nativeauthenticator 1.3 times each login with BaseHandler.statsd, which JupyterHub 6
    # removed: without this no-op stand-in every login POST fails with a 500.
    class _NoTimer:
        def start(self) -> _NoTimer:
            return self

        def stop(self, send: bool = True) -> None:
            pass

    class _NoStatsd:
        def timer(self, name: str) -> _NoTimer:
            return _NoTimer()

    native_handlers.LoginHandler.statsd = _NoStatsd()


class ItaggerAuthenticator(NativeAuthenticator):  # type: ignore[misc]
    """NativeAuthenticator with the administrator from ``.env`` and persistent, per-address lockouts."""

    bootstrap_admin_user = Unicode("", config=True, help="ADMIN_USER: created and kept approved at start")
    bootstrap_admin_password = Unicode("", config=True, help="ADMIN_PASSWORD: set at every start")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # the same cost as the stored hashes (bcrypt's default), so an unknown name takes as long
        self._unknown_user_hash = bcrypt.hashpw(b"no such user", bcrypt.gensalt())
        super().__init__(*args, **kwargs)

    # ---- start-up: tables and the administrator ----------------------------------------------
    def add_new_table(self) -> None:  # called once from NativeAuthenticator.__init__
        super().add_new_table()
        with self.db.bind.begin() as conn:
            conn.execute(sa.text(_FAILURES_TABLE))
        if self.bootstrap_admin_user:
            self._sync_admin(self.bootstrap_admin_user, self.bootstrap_admin_password)

    def _sync_admin(self, name: str, password: str) -> None:
        info = UserInfo.find(self.db, name)
        if info is None:
            self.create_user(name, password)
            info = UserInfo.find(self.db, name)
            self.log.info("created administrator %s from ADMIN_USER", name)
        elif password and not info.is_valid_password(password):
            info.password = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
            self.log.warning("ADMIN_PASSWORD changed in deploy/.env: password of %s updated", name)
        if info is not None and not info.is_authorized:
            info.is_authorized = True
        self.db.commit()

    # ---- lockouts, kept in the hub database -------------------------------------------------
    def _failures(self, username: str, address: str) -> tuple[int, float]:
        row = self.db.execute(
            sa.text(
                "SELECT failures, last_failure FROM itagger_login_failures"
                " WHERE username = :u AND address = :a"
            ),
            {"u": username, "a": address},
        ).first()
        return (int(row[0]), float(row[1])) if row else (0, 0.0)

    def is_locked_out(self, username: str, address: str, now: float | None = None) -> bool:
        """Whether ``username`` is refused from ``address`` right now."""
        if not self.allowed_failed_logins:
            return False
        failures, last = self._failures(username, address)
        now = time.time() if now is None else now
        return failures >= self.allowed_failed_logins and now - last < self.seconds_before_next_try

    def record_failure(self, username: str, address: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        failures, last = self._failures(username, address)
        if failures and now - last >= self.seconds_before_next_try:
            failures = 0  # the lockout window passed: count afresh
        params = {"u": username, "a": address, "n": failures + 1, "t": now}
        self.db.execute(
            sa.text("DELETE FROM itagger_login_failures WHERE username = :u AND address = :a"), params
        )
        self.db.execute(
            sa.text("INSERT INTO itagger_login_failures VALUES (:u, :a, :n, :t)"),
            params,
        )
        # forget windows long past, so that guessed names do not pile up
        self.db.execute(
            sa.text("DELETE FROM itagger_login_failures WHERE last_failure < :old"),
            {"old": now - 10 * max(self.seconds_before_next_try, 60)},
        )
        self.db.commit()

    def clear_failures(self, username: str, address: str) -> None:
        self.db.execute(
            sa.text("DELETE FROM itagger_login_failures WHERE username = :u AND address = :a"),
            {"u": username, "a": address},
        )
        self.db.commit()

    async def authenticate(self, handler: Any, data: dict[str, Any]) -> str | None:
        username = self.normalize_username(data["username"])
        password = str(data.get("password") or "")
        address = str(getattr(getattr(handler, "request", None), "remote_ip", "") or "")
        if self.is_locked_out(username, address):
            self.log.warning("login of %s from %s refused: locked out after failed logins", username, address)
            return None
        user = self.get_user(username)
        if user is None:
            bcrypt.checkpw(password.encode(), self._unknown_user_hash)
            self.record_failure(username, address)
            return None
        valid = user.is_valid_password(password)  # always checked: same time for unapproved users
        checks = [valid, user.is_authorized]
        if user.has_2fa:
            checks.append(user.is_valid_token(data.get("2fa")))
        if all(checks):
            self.clear_failures(username, address)
            return username
        self.record_failure(username, address)
        return None
