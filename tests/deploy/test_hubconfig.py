"""Pure hub helpers and the real deploy/jupyterhub_config.py loaded with a fake get_config."""

from __future__ import annotations

import re
import secrets
import sys
from pathlib import Path

import pytest
from traitlets.config import Config

from itagger_lib.errors import ConfigError
from itagger_lib.ops import hubconfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def good_env() -> dict[str, str]:
    env = {name: secrets.token_hex(32) for name in hubconfig.REQUIRED_SECRETS}
    env.update(ADMIN_USER="boss", POSTGRES_DB="itagger", POSTGRES_USER="itagger_owner", POSTGRES_HOST="db")
    return env


def example_env() -> dict[str, str]:
    return hubconfig.parse_env_file((DEPLOY / ".env.example").read_text())


def test_good_secrets_pass() -> None:
    hubconfig.validate_secrets(good_env())


@pytest.mark.parametrize("name", hubconfig.REQUIRED_SECRETS)
def test_missing_short_or_example_secret_is_named(name: str) -> None:
    env = good_env()
    del env[name]
    with pytest.raises(ConfigError, match=f"{name} is not set"):
        hubconfig.validate_secrets(env)
    env[name] = "x7Kq2" * 5  # 25 chars
    with pytest.raises(ConfigError, match=f"{name} is 25 characters long"):
        hubconfig.validate_secrets(env)
    env[name] = "change-me-" + secrets.token_hex(20)  # an old example file's placeholder
    with pytest.raises(ConfigError, match=f"{name} still has the example"):
        hubconfig.validate_secrets(env)
    env[name] = "a" * 40
    with pytest.raises(ConfigError, match=f"{name} is not random"):
        hubconfig.validate_secrets(env)


def test_env_example_leaves_every_secret_empty_so_compose_refuses_it() -> None:
    ex = example_env()
    for name in hubconfig.REQUIRED_SECRETS:
        assert ex[name] == "", name
    for name in ("ADMIN_USER", "POSTGRES_DB", "POSTGRES_USER", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        assert name in ex
    with pytest.raises(ConfigError, match="JUPYTERHUB_COOKIE_SECRET"):
        hubconfig.validate_secrets(ex)


@pytest.mark.parametrize("user", ["alice", "Ann.B", "ann_b", "x" * 200, "'; DROP TABLE ratings; --", "ünï"])
def test_role_name_is_safe_identifier(user: str) -> None:
    role = hubconfig.role_name(user)
    assert re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role)
    assert hubconfig.role_name(user) == role


def test_role_names_distinct_when_slugs_collide() -> None:
    assert hubconfig.role_name("Ann.B") != hubconfig.role_name("ann_b")


def test_group_environment() -> None:
    env = good_env() | {"OPENAI_API_KEY": "sk-test-openai", "ANTHROPIC_API_KEY": "sk-ant-test"}
    tag = hubconfig.user_environment("alice", ["tagger"], env, db_host="db", db_name="itagger")
    assert tag["ITAGGER_STORE_READONLY"] == "1"
    assert tag["ITAGGER_AUTO_MIGRATE"] == "0"
    assert "OPENAI_API_KEY" not in tag and "ANTHROPIC_API_KEY" not in tag
    assert tag["ITAGGER_DATABASE_URL"].startswith(f"postgresql+psycopg://{hubconfig.role_name('alice')}:")
    assert env["POSTGRES_PASSWORD"] not in tag["ITAGGER_DATABASE_URL"]
    res = hubconfig.user_environment("bob", ["tagger", "researcher"], env, db_host="db", db_name="itagger")
    assert res["ITAGGER_STORE_READONLY"] == "0" and res["ITAGGER_AUTO_MIGRATE"] == "0"
    assert res["OPENAI_API_KEY"] == "sk-test-openai" and res["ANTHROPIC_API_KEY"] == "sk-ant-test"
    adm = hubconfig.user_environment("boss", ["admin"], env, db_host="db", db_name="itagger")
    assert adm["ITAGGER_GROUP"] == "admin" and "OPENAI_API_KEY" in adm
    assert hubconfig.store_mount_mode(["tagger"]) == "ro"
    assert hubconfig.store_mount_mode(["researcher"]) == "rw"
    assert hubconfig.store_mount_mode([]) == "ro"  # unknown -> least privilege


def test_create_role_sql_grants_only_the_group() -> None:
    sql = hubconfig.create_role_sql("itu_alice_12345678", "pw'x", "tagger")
    joined = "\n".join(sql)
    assert 'GRANT "itagger_tagger" TO "itu_alice_12345678"' in joined
    assert 'REVOKE "itagger_admin" FROM "itu_alice_12345678"' in joined
    assert "PASSWORD 'pw''x'" in joined
    with pytest.raises(ConfigError, match="Unsafe database role"):
        hubconfig.create_role_sql('a"; DROP', "pw", "tagger")
    with pytest.raises(ConfigError, match="Unknown group 'root'"):
        hubconfig.create_role_sql("itu_a", "pw", "root")


def load_hub_config(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Config:
    for k in [*hubconfig.REQUIRED_SECRETS, "ADMIN_USER"]:
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = Config()
    path = DEPLOY / "jupyterhub_config.py"
    code = compile(path.read_text(), str(path), "exec")
    exec(code, {"get_config": lambda: cfg, "__file__": str(path), "__name__": "jupyterhub_config"})
    return cfg


def test_hub_config_loads_with_good_env(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_hub_config(
        good_env() | {"ITAGGER_SPAWNER": "local", "HUB_DB_URL": "sqlite:///hub.sqlite"}, monkeypatch
    )
    assert cfg.JupyterHub.spawner_class == "jupyterhub.spawner.LocalProcessSpawner"
    assert cfg.JupyterHub.db_url == "sqlite:///hub.sqlite"
    assert cfg.Authenticator.admin_users == {"boss"}
    assert cfg.NativeAuthenticator.open_signup is False
    assert cfg.NativeAuthenticator.allowed_failed_logins > 0
    assert set(cfg.JupyterHub.load_groups) == {"tagger", "researcher", "admin"}
    assert any(s["name"] == "jupyterhub-idle-culler" for s in cfg.JupyterHub.services)
    assert callable(cfg.Spawner.pre_spawn_hook)
    assert len(cfg.JupyterHub.cookie_secret) == 32


def test_hub_config_simple_spawner_for_native_runs(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    env = good_env() | {
        "ITAGGER_SPAWNER": "simple",
        "ITAGGER_HOMES_DIR": str(tmp_path / "homes"),
        "ITAGGER_HUB_PORT": "18081",
        "ITAGGER_PROXY_API_URL": "http://127.0.0.1:18001",
        "ITAGGER_SINGLEUSER_ARGS": "--LabApp.news_url= --debug",
    }
    cfg = load_hub_config(env, monkeypatch)
    assert cfg.JupyterHub.spawner_class == "jupyterhub.spawner.SimpleLocalProcessSpawner"
    assert cfg.SimpleLocalProcessSpawner.home_dir_template == str(tmp_path / "homes" / "{username}")
    assert cfg.Spawner.cmd == [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
    assert cfg.Spawner.args[:2] == ["--LabApp.news_url=", "--debug"]
    assert cfg.JupyterHub.hub_port == 18081 and cfg.JupyterHub.hub_ip == "127.0.0.1"
    assert cfg.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:18001"
    with pytest.raises(ConfigError, match="ITAGGER_SPAWNER='kubernetes'"):
        load_hub_config(good_env() | {"ITAGGER_SPAWNER": "kubernetes"}, monkeypatch)


def test_hub_config_docker_spawner(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_hub_config(good_env() | {"ITAGGER_SPAWNER": "docker"}, monkeypatch)
    assert cfg.JupyterHub.spawner_class == "dockerspawner.DockerSpawner"
    assert "itagger-home-{username}" in cfg.DockerSpawner.volumes
    # the user image is built locally, never pulled: a registry name could be anyone's
    assert cfg.DockerSpawner.pull_policy == "never"
    assert cfg.DockerSpawner.mem_limit == "4G" and cfg.DockerSpawner.cpu_limit == 2.0
    assert cfg.DockerSpawner.extra_host_config["log_config"]["config"] == {"max-size": "10m", "max-file": "5"}
    assert cfg.JupyterHub.hub_connect_ip == "hub"
    limited = load_hub_config(
        good_env()
        | {"ITAGGER_SPAWNER": "docker", "ITAGGER_USER_MEM_LIMIT": "512m", "ITAGGER_USER_CPU_LIMIT": "0.5"},
        monkeypatch,
    )
    assert limited.DockerSpawner.mem_limit == "512M" and limited.DockerSpawner.cpu_limit == 0.5
    with pytest.raises(ConfigError, match="ITAGGER_USER_MEM_LIMIT='lots' is not a size"):
        load_hub_config(
            good_env() | {"ITAGGER_SPAWNER": "docker", "ITAGGER_USER_MEM_LIMIT": "lots"}, monkeypatch
        )


def test_hub_cookies_are_secure_whatever_the_proxy_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_hub_config(good_env(), monkeypatch)
    assert cfg.JupyterHub.tornado_settings["cookie_options"] == {"secure": True}


def test_researchers_get_the_vlm_endpoint_taggers_nothing() -> None:
    env = good_env() | {"OPENAI_API_KEY": "sk-test-x", "OPENAI_BASE_URL": "http://fakevlm:8000/v1"}
    res = hubconfig.user_environment("r", ["researcher"], env, db_host="db", db_name="itagger")
    assert res["OPENAI_BASE_URL"] == "http://fakevlm:8000/v1" and res["OPENAI_API_KEY"] == "sk-test-x"
    tag = hubconfig.user_environment("t", ["tagger"], env, db_host="db", db_name="itagger")
    assert "OPENAI_BASE_URL" not in tag and "OPENAI_API_KEY" not in tag


@pytest.mark.parametrize("name", ["JUPYTERHUB_CRYPT_KEY", "ADMIN_PASSWORD", "POSTGRES_PASSWORD"])
def test_hub_config_refuses_missing_or_example_secret(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = good_env()
    del env[name]
    with pytest.raises(ConfigError, match=f"{name} is not set"):
        load_hub_config(env, monkeypatch)
    env[name] = "change-me-" + secrets.token_hex(20)
    with pytest.raises(ConfigError, match=f"{name} still has the example"):
        load_hub_config(env, monkeypatch)


def test_taggers_land_in_the_tagging_app_others_in_jupyterlab() -> None:
    from itagger_lib.widgets.tagging_app import APP_PATH

    assert hubconfig.TAGGING_APP_URL == "/" + APP_PATH
    assert hubconfig.default_url(["tagger"]) == hubconfig.TAGGING_APP_URL
    assert hubconfig.default_url([]) == hubconfig.TAGGING_APP_URL  # no group: a tagger's rights
    assert hubconfig.default_url(["tagger", "researcher"]) == "/lab"
    assert hubconfig.default_url(["admin"]) == "/lab"


def test_pre_spawn_hook_sets_the_landing_page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import asyncio
    from types import SimpleNamespace

    env = good_env() | {"ITAGGER_SPAWNER": "simple", "ITAGGER_SKIP_DB_ROLES": "1"}
    cfg = load_hub_config(env, monkeypatch)
    assert cfg.Spawner.default_url == "/lab"
    for groups, admin, landing in (
        (["tagger"], False, hubconfig.TAGGING_APP_URL),
        (["researcher"], False, "/lab"),
    ):
        spawner = SimpleNamespace(
            user=SimpleNamespace(name="ann", admin=admin, groups=[SimpleNamespace(name=g) for g in groups]),
            environment={},
            home_dir=str(tmp_path / "ann"),
            default_url="/lab",
        )
        asyncio.run(cfg.Spawner.pre_spawn_hook(spawner))
        assert spawner.default_url == landing
        assert (tmp_path / "ann" / "tagging_app.ipynb").is_file()  # the app's notebook is in the home
