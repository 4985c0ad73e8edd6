from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import itagger_lib
from itagger_lib.ops.backup import backup
from itagger_lib.ops.doctor import (
    check_db_not_published,
    check_env_file,
    check_no_keys_in_history,
    find_key_strings,
    run_checks,
)
from itagger_lib.ops.hubconfig import REQUIRED_SECRETS, parse_env_file

REPO = Path(__file__).resolve().parents[2]


def _stack(root: Path) -> None:
    (root / "deploy").mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "docker-compose.yml", root / "deploy")
    shutil.copy(REPO / "VERSION", root)
    (root / "README.md").write_text(f"Image Tagger {itagger_lib.__version__}\n")


def _good_env() -> dict[str, str]:
    env = parse_env_file((REPO / "deploy" / ".env.example").read_text())
    env.update({name: secrets.token_urlsafe(48) for name in REQUIRED_SECRETS})
    env["POSTGRES_USER"] = "itagger_lab"
    return env


def test_doctor_passes_on_a_good_setup(tmp_path, workspace):
    _stack(tmp_path / "repo")
    backup(workspace, tmp_path / "backups" / "today")
    checks = run_checks(tmp_path / "repo", _good_env(), itagger_lib.__version__, backups=tmp_path / "backups")
    assert [c.name for c in checks if not c.passed] == []


def test_doctor_fails_on_env_example_naming_the_reasons(tmp_path):
    _stack(tmp_path / "repo")
    env_file = REPO / "deploy" / ".env.example"
    cmd = [
        sys.executable,
        "-m",
        "itagger_lib.cli",
        "doctor",
        "--root",
        str(tmp_path / "repo"),
        "--env",
        str(env_file),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert "[FAIL] secrets" in done.stdout and "JUPYTERHUB_COOKIE_SECRET is not set" in done.stdout
    assert "[FAIL] recent-backup" in done.stdout and "fix:" in done.stdout


def test_key_shaped_strings_in_notebook_outputs_are_found(tmp_path):
    fake = "sk-" + "ant-" + secrets.token_hex(24)
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "02_Tag.ipynb").write_text('{"outputs": [{"text": "' + fake + '"}]}')
    assert find_key_strings(tmp_path) == ["nb/02_Tag.ipynb"]


def test_repository_has_no_key_shaped_strings():
    assert find_key_strings(REPO) == []


def test_published_db_port_fails(tmp_path):
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("services:\n  db:\n    image: postgres:16\n    ports: ['5432:5432']\n")
    check = check_db_not_published(compose)
    assert not check.passed and "5432" in check.detail
    assert check_db_not_published(REPO / "deploy" / "docker-compose.yml").passed


def _git_repo(root: Path) -> None:
    _stack(root)
    for args in (["init", "-q"], ["config", "user.email", "a@b.c"], ["config", "user.name", "lab"]):
        subprocess.run(["git", "-C", str(root), *args], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(root), "commit", "-qm", "stack"], check=True)


def test_env_file_must_be_private_and_untracked(tmp_path):
    root = tmp_path / "repo"
    _git_repo(root)
    env_file = root / "deploy" / ".env"
    env_file.write_text("ADMIN_PASSWORD=x\n")
    env_file.chmod(0o644)
    check = check_env_file(root, env_file)
    assert not check.passed and "mode 644" in check.detail
    env_file.chmod(0o600)
    assert check_env_file(root, env_file).passed
    subprocess.run(["git", "-C", str(root), "add", "-f", "deploy/.env"], check=True)
    subprocess.run(["git", "-C", str(root), "commit", "-qm", "oops"], check=True)
    check = check_env_file(root, env_file)
    assert not check.passed and "committed to git" in check.detail


def test_a_key_anywhere_in_history_is_found_even_after_its_removal(tmp_path):
    root = tmp_path / "repo"
    _git_repo(root)
    assert check_no_keys_in_history(root).passed
    real_looking = "sk-proj-" + secrets.token_urlsafe(40).replace("-", "x")
    (root / "notebook.py").write_text(f'OPENAI_API_KEY = "{real_looking}"\n')
    subprocess.run(["git", "-C", str(root), "add", "notebook.py"], check=True)
    subprocess.run(["git", "-C", str(root), "commit", "-qm", "add key"], check=True)
    (root / "notebook.py").write_text("OPENAI_API_KEY = os.environ['OPENAI_API_KEY']\n")
    subprocess.run(["git", "-C", str(root), "commit", "-qam", "remove key"], check=True)
    assert find_key_strings(root) == []  # the files are clean now ...
    check = check_no_keys_in_history(root)  # ... the history is not
    assert not check.passed and "rotate the key" in check.fix


def test_doctor_runs_from_deploy_and_finds_the_repository(tmp_path):
    root = tmp_path / "repo"
    _stack(root)
    env_file = root / "deploy" / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in _good_env().items()))
    env_file.chmod(0o600)
    done = subprocess.run(
        [sys.executable, "-m", "itagger_lib.cli", "doctor"],
        cwd=root / "deploy",
        capture_output=True,
        text=True,
    )
    assert f"env file: {env_file}" in done.stdout, done.stdout + done.stderr
    assert "[PASS] secrets" in done.stdout and "[PASS] env-file" in done.stdout
