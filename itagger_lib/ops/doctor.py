"""``itagger doctor``: the deployment security checklist, checked by software.

Each check returns a :class:`Check` (name, passed, detail, fix; ``skipped`` when it cannot
run where doctor runs). The checklist follows the old app's guide (section "Security
checklist"): strong non-example secrets, non-default database credentials, Postgres not
published, HTTPS with an HTTP redirect, no API keys in the repository, its history or
notebook outputs, the ``.env`` file private and uncommitted, a recent verified backup,
consistent versions. With ``--url`` it also checks the live TLS endpoint (only
forward-secret AEAD suites, no TLS 1.0/1.1, a certificate valid for 14 more days, Secure
cookies); on the Docker host it checks that the running images are this release.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from itagger_lib.errors import OperationsError
from itagger_lib.ops.backup import MANIFEST, verify
from itagger_lib.ops.checks import Check
from itagger_lib.ops.endpoint import check_https, check_tls
from itagger_lib.ops.hubconfig import REQUIRED_SECRETS, secret_problem

KEY_PATTERN = re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{32,}")
#: Words that mark a deliberate fake key in tests and docs (real keys are random).
FAKE_MARKERS = ("test", "fake", "example", "dummy", "not-a-real", "xxxx")
SKIP_DIRS = frozenset(
    {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
)
DEFAULT_DB_USERS = frozenset({"postgres", "root", "admin", "user"})
MAX_BACKUP_AGE = dt.timedelta(days=7)


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
    env_file: Path | None = None,
) -> list[Check]:
    """Every check.

    The redirect check asks ``http_url``, else ``ITAGGER_HTTP_URL`` from ``env``, else
    ``url``'s host on ``ITAGGER_HTTP_PORT`` (default 80).
    """
    if url and not http_url and not env.get("ITAGGER_HTTP_URL"):
        host = urlsplit(url if "://" in url else f"https://{url}").hostname or ""
        port = env.get("ITAGGER_HTTP_PORT") or "80"
        http_url = f"http://{host}" + ("" if port == "80" else f":{port}")
    checks = [
        check_secrets(env),
        check_db_credentials(env),
        check_db_not_published(root / "deploy" / "docker-compose.yml"),
    ]
    if url:
        checks += check_https(url, verify_tls, http_url or env.get("ITAGGER_HTTP_URL") or None)
    if url:
        checks += check_tls(url, verify_tls)
    checks += [
        check_no_keys(root),
        check_no_keys_in_history(root),
        check_env_file(root, env_file),
        check_backup(backups),
        check_versions(root, env, package_version),
        check_running_images(env, package_version),
    ]
    return checks


def format_report(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        status = "SKIP" if c.skipped else "PASS" if c.passed else "FAIL"
        lines.append(f"[{status}] {c.name}: {c.detail}")
        if not c.passed and c.fix:
            lines.append(f"       fix: {c.fix}")
    return "\n".join(lines)


def find_root(start: Path) -> Path:
    """The repository around ``start``: the nearest folder holding ``deploy/docker-compose.yml``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "deploy" / "docker-compose.yml").is_file():
            return folder
    return start


# ---- the repository and the env file -----------------------------------------------------------
def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    git = shutil.which("git")
    if not git or not (root / ".git").exists():
        return None
    return subprocess.run([git, "-C", str(root), *args], capture_output=True, text=True, timeout=120)


def check_no_keys_in_history(root: Path) -> Check:
    """No API-key-shaped string was ever committed (a key in history is a leaked key)."""
    fix = "rotate the key at the provider now; then remove it from history (git filter-repo) and force-push"
    done = _git(
        root, "log", "--all", "-p", "--no-color", "-G", r"sk-[A-Za-z0-9_-]{20,}", "--format=commit %H"
    )
    if done is None or done.returncode != 0:
        return Check("no-keys-in-history", True, f"{root} is not a git checkout", fix, skipped=True)
    commit, hits = "", []
    for line in done.stdout.splitlines():
        if line.startswith("commit "):
            commit = line.split()[1][:10]
        elif line.startswith("+") and any(
            not any(w in m.lower() for w in FAKE_MARKERS) for m in KEY_PATTERN.findall(line)
        ):
            hits.append(commit)
    return Check(
        "no-keys-in-history",
        not hits,
        f"key-shaped strings added in commits {', '.join(sorted(set(hits))[:5])}"
        if hits
        else "no key-shaped string in any commit",
        fix,
    )


def check_env_file(root: Path, env_file: Path | None) -> Check:
    """``deploy/.env`` is not tracked by git, and only its owner can read it."""
    fix = "chmod 600 deploy/.env; git rm --cached deploy/.env (it is in .gitignore) and rotate its secrets"
    if env_file is None or not env_file.is_file():
        return Check("env-file", True, "no env file given", fix, skipped=True)
    problems = []
    mode = env_file.stat().st_mode & 0o777
    if mode & 0o077:
        problems.append(f"{env_file} has mode {mode:o}: other users can read the secrets")
    rel = env_file.resolve()
    tracked = None
    if root.resolve() in rel.parents:
        tracked = _git(root, "ls-files", "--error-unmatch", str(rel.relative_to(root.resolve())))
    if tracked is not None and tracked.returncode == 0:
        problems.append(f"{env_file} is committed to git")
    return Check(
        "env-file",
        not problems,
        "; ".join(problems) or f"{env_file}: mode {mode:o}, not committed",
        fix,
    )


# ---- the running stack --------------------------------------------------------------------------
def check_running_images(env: Mapping[str, str], package_version: str) -> Check:
    """The containers of the compose project run images of this release (label version)."""
    fix = "build and restart: docker compose build && docker compose up -d (docs/deploy.md, Upgrade)"
    docker = shutil.which("docker")
    project = env.get("COMPOSE_PROJECT_NAME") or "itagger"
    if not docker:
        return Check(
            "running-images", True, "no docker command here; run doctor on the Docker host", fix, True
        )
    ps = subprocess.run(
        [docker, "ps", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    names = ps.stdout.split()
    if ps.returncode != 0 or not names:
        why = ps.stderr.strip()[:200] if ps.returncode else f"no running containers of project {project}"
        return Check("running-images", True, why, fix, skipped=True)
    fmt = '{{.Name}} {{index .Config.Labels "org.opencontainers.image.version"}}'
    inspect = subprocess.run(
        [docker, "inspect", "--format", fmt, *names], capture_output=True, text=True, timeout=60
    )
    versions = dict(line.lstrip("/").split(" ", 1) for line in inspect.stdout.splitlines() if " " in line)
    wrong = {n: v for n, v in versions.items() if v != package_version}
    return Check(
        "running-images",
        not wrong and bool(versions),
        ", ".join(f"{n} runs {v or 'an unlabelled image'}" for n, v in sorted(wrong.items()))
        if wrong
        else f"{len(versions)} containers of {project} run release {package_version}",
        fix,
    )
