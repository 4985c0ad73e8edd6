"""``itagger doctor``: the deployment security checklist, checked by software.

Each check returns a :class:`Check` (name, passed, detail, fix). The checklist follows the
old app's guide (section "Security checklist"): strong non-example secrets, non-default
database credentials, Postgres not published, HTTPS with an HTTP redirect, no API keys in
the repository or notebook outputs, a recent verified backup, consistent versions.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from itagger_lib.errors import OperationsError
from itagger_lib.ops.backup import MANIFEST, verify
from itagger_lib.ops.hubconfig import REQUIRED_SECRETS, secret_problem

KEY_PATTERN = re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{32,}")
#: Words that mark a deliberate fake key in tests and docs (real keys are random).
FAKE_MARKERS = ("test", "fake", "example", "dummy", "not-a-real", "xxxx")
SKIP_DIRS = frozenset(
    {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
)
DEFAULT_DB_USERS = frozenset({"postgres", "root", "admin", "user"})
MAX_BACKUP_AGE = dt.timedelta(days=7)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    fix: str = ""


def check_secrets(env: Mapping[str, str]) -> Check:
    problems = [p for n in REQUIRED_SECRETS if (p := secret_problem(n, env.get(n)))]
    return Check(
        "secrets",
        not problems,
        "; ".join(problems) or "all secrets set, long and not examples",
        "generate each with: python -c 'import secrets; print(secrets.token_urlsafe(48))'",
    )


def check_db_credentials(env: Mapping[str, str]) -> Check:
    user = env.get("POSTGRES_USER", "")
    problems = []
    if not user or user.lower() in DEFAULT_DB_USERS:
        problems.append(f"POSTGRES_USER={user!r} is a default name")
    if p := secret_problem("POSTGRES_PASSWORD", env.get("POSTGRES_PASSWORD")):
        problems.append(p)
    return Check(
        "db-credentials",
        not problems,
        "; ".join(problems) or f"database user {user!r}, strong password",
        "set POSTGRES_USER to a project-specific name and POSTGRES_PASSWORD to a random secret",
    )


def check_db_not_published(compose_file: Path) -> Check:
    try:
        services = yaml.safe_load(compose_file.read_text())["services"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        return Check(
            "db-not-published", False, f"cannot read {compose_file}: {exc}", "pass the stack's compose file"
        )
    db = services.get("db", {})
    published = db.get("ports") or db.get("network_mode") == "host"
    return Check(
        "db-not-published",
        not published,
        f"service db in {compose_file} publishes {db.get('ports') or 'host network'}"
        if published
        else "service db has no published port",
        "remove `ports:` / `network_mode: host` from the db service; it must stay on the internal network",
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


def find_key_strings(root: Path) -> list[str]:
    """Files under ``root`` (notebooks and their outputs included) holding an API-key-shaped string."""
    hits = []
    for path in sorted(root.rglob("*")):
        if any(part in SKIP_DIRS for part in path.relative_to(root).parts) or not path.is_file():
            continue
        if path.name == ".env" or path.stat().st_size > 5_000_000:
            continue
        try:
            text = path.read_text(errors="ignore")
        except OSError:
            continue
        if any(not any(w in m.lower() for w in FAKE_MARKERS) for m in KEY_PATTERN.findall(text)):
            hits.append(str(path.relative_to(root)))
    return hits


def check_no_keys(root: Path) -> Check:
    hits = find_key_strings(root)
    return Check(
        "no-keys-in-repo",
        not hits,
        f"key-shaped strings in: {', '.join(hits[:10])}" if hits else f"no sk-... strings under {root}",
        "remove the keys, clear notebook outputs, rotate the keys at the provider; "
        "keep keys only in deploy/.env",
    )


def check_backup(backups: Path | None, now: dt.datetime | None = None) -> Check:
    fix = "run `itagger backup /backups/$(date +%F)` (daily, e.g. from cron) and pass --backups /backups"
    if backups is None:
        return Check("recent-backup", False, "no backup folder given", fix)
    manifests = sorted(backups.glob(f"*/{MANIFEST}")) + sorted(backups.glob(MANIFEST))
    if not manifests:
        return Check("recent-backup", False, f"no backup (manifest.json) under {backups}", fix)
    newest = max(manifests, key=lambda p: json.loads(p.read_text())["created_at"])
    try:
        manifest = verify(newest.parent)
    except OperationsError as exc:
        return Check("recent-backup", False, str(exc), fix)
    age = (now or dt.datetime.now(dt.UTC)) - dt.datetime.fromisoformat(manifest["created_at"])
    return Check(
        "recent-backup",
        age <= MAX_BACKUP_AGE,
        f"newest verified backup {newest.parent} is {age.days} days old",
        fix,
    )


def check_versions(root: Path, env: Mapping[str, str], package_version: str) -> Check:
    found = {
        "VERSION": (root / "VERSION").read_text().strip() if (root / "VERSION").is_file() else "missing",
        "itagger_lib.__version__": package_version,
    }
    readme = root / "README.md"
    if readme.is_file() and (m := re.search(r"Image Tagger (\d+\.\d+\.\d+)", readme.read_text())):
        found["README"] = m.group(1)
    if env.get("ITAGGER_VERSION"):
        found["ITAGGER_VERSION (image tags)"] = env["ITAGGER_VERSION"]
    compose = root / "deploy" / "docker-compose.yml"
    if compose.is_file():
        for tag in set(re.findall(r"ITAGGER_VERSION:-([\w.]+)", compose.read_text())):
            found[f"compose default tag {tag}"] = tag
    ok = len(set(found.values())) == 1
    return Check(
        "versions-agree",
        ok,
        ", ".join(f"{k}={v}" for k, v in found.items()),
        "bump VERSION, README, deploy/.env ITAGGER_VERSION and the compose defaults together",
    )


def run_checks(
    root: Path,
    env: Mapping[str, str],
    package_version: str,
    url: str | None = None,
    backups: Path | None = None,
    verify_tls: bool | str = True,
    http_url: str | None = None,
) -> list[Check]:
    """Every check; the redirect check uses ``http_url``, else ``ITAGGER_HTTP_URL`` in ``env``."""
    checks = [
        check_secrets(env),
        check_db_credentials(env),
        check_db_not_published(root / "deploy" / "docker-compose.yml"),
    ]
    if url:
        checks += check_https(url, verify_tls, http_url or env.get("ITAGGER_HTTP_URL") or None)
    checks += [check_no_keys(root), check_backup(backups), check_versions(root, env, package_version)]
    return checks


def format_report(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        lines.append(f"[{'PASS' if c.passed else 'FAIL'}] {c.name}: {c.detail}")
        if not c.passed and c.fix:
            lines.append(f"       fix: {c.fix}")
    return "\n".join(lines)
