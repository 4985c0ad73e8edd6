from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from itagger_lib.ops.hubconfig import REQUIRED_SECRETS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
SECRETS = (*REQUIRED_SECRETS, "ADMIN_USER", "POSTGRES_DB", "POSTGRES_USER", "ITAGGER_SERVER_NAME")


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def _env(tmp_path: Path, drop: str | None = None) -> Path:
    lines = [f"{name}={'x' * 8}{name.lower()}{'y' * 24}" for name in SECRETS if name != drop]
    env = tmp_path / "test.env"
    env.write_text("\n".join(lines) + "\n")
    return env


def test_every_secret_is_required_with_a_message():
    text = COMPOSE.read_text()
    for name in SECRETS:
        assert re.search(rf"\${{{name}:\?[^}}]+}}", text), f"{name} is not required (${{{name}:?...}})"
        assert not re.search(rf"\${{{name}:?-", text), f"{name} has a default"


def test_db_is_internal_and_unpublished_and_volumes_are_named():
    spec = yaml.safe_load(COMPOSE.read_text())
    db = spec["services"]["db"]
    assert "ports" not in db and db.get("network_mode") != "host"
    assert db["networks"] == ["backend"] and spec["networks"]["backend"]["internal"] is True
    assert {"pgdata", "data_store", "hub_data"} <= set(spec["volumes"])
    assert any(v.startswith("pgdata:") for v in db["volumes"])
    assert {"dask"} == set(spec["services"]["dask-worker"]["profiles"])


@pytest.mark.hub
@pytest.mark.skipif(
    _compose_cli() is None,
    reason="neither `docker compose` nor `docker-compose` installed: apt-get install docker-compose",
)
def test_compose_config_validates_and_refuses_a_missing_secret(tmp_path):
    cli = _compose_cli()
    assert cli is not None
    ok = subprocess.run(
        [*cli, "--env-file", str(_env(tmp_path)), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    rendered = yaml.safe_load(ok.stdout)
    assert "ports" not in rendered["services"]["db"]
    for name in ("JUPYTERHUB_CRYPT_KEY", "POSTGRES_PASSWORD"):
        bad = subprocess.run(
            [*cli, "--env-file", str(_env(tmp_path, drop=name)), "-f", str(COMPOSE), "config"],
            capture_output=True,
            text=True,
        )
        assert bad.returncode != 0 and name in bad.stderr
