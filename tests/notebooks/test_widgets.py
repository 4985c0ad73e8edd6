"""The cockpit widgets' logic, driven without a browser (as ipywidgets' own tests do)."""

from __future__ import annotations

import pytest

from itagger_lib.widgets.admin import KILL_SWITCH, AdminCockpit
from itagger_lib.widgets.upload import UploadPanel, safe_name


def browser_upload(name: str, content: bytes) -> dict:
    """One file as the browser's FileUpload model sends it."""
    return {
        "name": name,
        "type": "image/jpeg",
        "size": len(content),
        "content": memoryview(content),
        "last_modified": 1_700_000_000_000,
    }


def test_upload_panel_ingests_uploaded_bytes_and_lists_failures(workspace, sample_dir) -> None:
    panel = UploadPanel(workspace)
    assert "no images yet" in panel.result.value
    files = sorted(sample_dir.glob("*.jpg"))[:2]
    sent = [browser_upload(p.name, p.read_bytes()) for p in files] + [
        browser_upload("../broken.jpg", b"nope!")
    ]
    panel.upload.set_state({"value": sent})  # the path a browser's upload takes
    assert len(panel.upload.value) == 3
    panel.ingest_button.click()
    report = panel.last_report
    assert report is not None and len(report.added) == 2 and len(report.failed) == 1
    images = workspace.images()
    assert sorted(images["source_name"]) == sorted(p.name for p in files)
    assert "broken.jpg" in panel.result.value and "<table" in panel.result.value
    assert panel.progress.bar_style == "warning" and panel.upload.value == ()
    assert len(workspace.failures(report.run_id)) == 1


def test_upload_panel_ingests_a_server_folder(workspace, sample_dir) -> None:
    panel = UploadPanel(workspace, collection="site-a")
    panel.folder.value = str(sample_dir)
    panel.folder_button.click()
    assert panel.last_report is not None and len(panel.last_report.added) == 12
    assert set(workspace.images()["collection"]) == {"site-a"}
    assert panel.progress.bar_style == "success"
    assert panel.ingest_folder("  ") is None and "folder" in panel.result.value


def test_safe_name_drops_folders() -> None:
    assert safe_name("../../etc/passwd", 0) == "passwd"
    assert safe_name("C:\\Users\\x\\a.jpg", 1) == "a.jpg"
    assert safe_name("..", 2) == "upload-2"


def test_admin_on_an_empty_workspace_says_what_to_do(workspace) -> None:
    cockpit = AdminCockpit(workspace)
    status = cockpit.status()
    assert status["images"] == 0 and status["schema_current"]
    assert "No images yet" in (cockpit.next_step() or "")
    checks = {c.name: c for c in cockpit.smoke_checks()}
    assert checks["store check"].passed
    assert checks["science on a few images"].outcome in {"skip"}
    assert (
        "no images" in checks["science on a few images"].message
        or "not installed" in checks["science on a few images"].message
    )
    assert "Next:" in cockpit.status_html()


def test_admin_smoke_checks_pass_on_images(workspace, sample_dir) -> None:
    workspace.ingest([str(p) for p in sorted(sample_dir.glob("*.jpg"))[:3]], progress=False)
    cockpit = AdminCockpit(workspace)
    assert cockpit.next_step() is None
    assert cockpit.widget is not None  # builds the layout
    cockpit.run_button.click()
    checks = {c.name: c for c in cockpit.checks}
    assert checks["store check"].passed
    assert checks["science on a few images"].outcome in {"pass", "skip"}
    assert checks["VLM dry run (stub)"].outcome in {"pass", "skip"}
    assert not [c for c in cockpit.checks if c.outcome == "fail"], cockpit.checks
    # a broken store is a FAIL, not an exception
    path = workspace.image_path(int(workspace.images().index[0]))
    path.chmod(0o644)
    path.write_bytes(b"changed")
    assert [c.outcome for c in cockpit.smoke_checks() if c.name == "store check"] == ["fail"]


def test_engine_card_shows_which_keys_not_their_values(workspace, monkeypatch) -> None:
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    cockpit = AdminCockpit(workspace)
    card = cockpit.engine_card()
    assert card["keys"] == {"OPENAI_API_KEY": True, "ANTHROPIC_API_KEY": False}
    rendered = cockpit.engine_html() + cockpit.status_html() + repr(card)
    assert secret not in rendered and "OPENAI_API_KEY: present" in rendered


def test_kill_switch_toggle_writes_the_setting(workspace) -> None:
    cockpit = AdminCockpit(workspace)
    assert cockpit.engine_card()["kill_switch"] is False
    assert cockpit.widget is not None
    cockpit.kill_switch_button.value = True
    assert workspace.get_setting(KILL_SWITCH) is True
    assert AdminCockpit(workspace).engine_card()["kill_switch"] is True
    cockpit.kill_switch_button.value = False
    assert workspace.get_setting(KILL_SWITCH) is False


@pytest.mark.parametrize("on", [True, False])
def test_set_kill_switch(workspace, on) -> None:
    AdminCockpit(workspace).set_kill_switch(on)
    assert AdminCockpit(workspace).engine_card()["kill_switch"] is on


def test_engine_card_reads_the_engines_prices_and_spend(workspace, monkeypatch) -> None:
    pytest.importorskip("itagger_lib.vlm.ledger")
    from itagger_lib.vlm import ledger

    monkeypatch.delenv("ITAGGER_VLM_PROVIDER", raising=False)
    ledger.set_price(workspace, "openai", "gpt-test", 2.5, 10.0)
    workspace.set_setting("vlm.budget_usd", 5.0)
    workspace.set_setting("vlm.provider", "stub")
    card = AdminCockpit(workspace).engine_card()
    assert card["prices"] == {"openai/gpt-test": "in 2.5 / out 10 per Mtok"}
    assert card["budget_usd"] == 5.0 and card["spend_usd"] == 0.0
    assert card["provider"] == "stub"
    assert "$5.00" in AdminCockpit(workspace).engine_html()


def test_admin_runs_table_and_failures_one_click_away(workspace, sample_dir, tmp_path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"not an image")
    workspace.ingest(sample_dir, progress=False)
    report = workspace.ingest(bad, progress=False)
    cockpit = AdminCockpit(workspace)
    runs = cockpit.recent_runs()
    assert [r["kind"] for r in runs] == ["ingest", "ingest"] and runs[0]["failed"] == 1
    assert runs[0]["status"] in ("partial", "failed") and runs[0]["done"] == "0 of 1"
    html = cockpit.runs_html()
    assert "class='itagger-runs'" in html and "color:#2f7d32" in html  # succeeded in green
    cockpit.widget  # noqa: B018 - builds the buttons
    (button,) = cockpit.failure_buttons.children
    assert button.description == f"failures of run {report.run_id} (1)"
    button.click()
    assert "broken.jpg" in cockpit.failures.value and "not a readable image" in cockpit.failures.value


def test_engine_card_prices_are_a_table_with_dates(workspace, monkeypatch) -> None:
    from itagger_lib.vlm import ledger

    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ITAGGER_VLM_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    assert "none set" in AdminCockpit(workspace).engine_html()
    ledger.set_price(workspace, "openai", "gpt-4o-mini", 0.15, 0.6)
    html = AdminCockpit(workspace).engine_html()
    assert "class='itagger-prices'" in html and "$0.15" in html and "set on" in html
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")  # a local server, no key
    assert AdminCockpit(workspace).engine_card()["provider"] == "openai"
