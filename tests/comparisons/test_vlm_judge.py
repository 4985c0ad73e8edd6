"""The VLM as a rater of pairwise and best–worst studies, against the loopback fake server
(the real ``openai`` and ``anthropic`` SDKs) and the stub: multi-image and composite
requests, ledger, cache, budget, failures."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image

from itagger_lib.comparisons.queue import rater_trials
from itagger_lib.errors import ArgumentError, PriceUnknownError
from tests.fakes.vlm_server import FakeVLMServer

KEY = "sk-itagger-test-SECRET-0123456789abcdef"
RATER = "vlm:openai/test-model@cmp-2"


@pytest.fixture
def ws(workspace, scene_dir: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from itagger_lib.vlm.ledger import set_price

    for name in ("OPENAI_BASE_URL", "ITAGGER_VLM_PROVIDER", "ITAGGER_VLM_MODEL", "OPENAI_API_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    workspace.ingest(scene_dir, progress=False)
    set_price(workspace, "openai", "test-model", 1.0, 4.0)
    return workspace


@pytest.fixture
def server() -> Iterator[FakeVLMServer]:
    with FakeVLMServer() as fake:
        yield fake


def _judge(ws, server: FakeVLMServer, study: str, **kw):  # type: ignore[no-untyped-def]
    return ws.judge_with_vlm(
        study, provider="openai", model="test-model", provider_options={"base_url": server.openai_url}, **kw
    )


def _sent(request: dict) -> list[Image.Image | str]:  # type: ignore[type-arg]
    """The user message's parts in order: images (OpenAI or Anthropic shape) and texts."""
    parts: list[Image.Image | str] = []
    for message in request["body"]["messages"]:
        for part in message["content"] if isinstance(message["content"], list) else []:
            data = None
            if part.get("type") == "image_url":
                data = part["image_url"]["url"].split(",", 1)[1]
            elif part.get("type") == "image":
                data = part["source"]["data"]
            if data:
                parts.append(Image.open(io.BytesIO(base64.b64decode(data))))
            elif part.get("type") == "text":
                parts.append(part["text"])
    return parts


def _sent_image(request: dict) -> Image.Image:  # type: ignore[type-arg]
    images = [p for p in _sent(request) if isinstance(p, Image.Image)]
    assert len(images) == 1, "one composite image"
    return images[0]


def test_vlm_judges_a_pairwise_study_as_one_more_rater(ws, server: FakeVLMServer) -> None:  # type: ignore[no-untyped-def]
    ws.create_study(
        "p", design="pairwise", question="spaciousness", pairs_per_image=4, raters_per_image=2, seed=2
    )
    report = _judge(ws, server, "p")
    assert report.rater == RATER and report.judged == 11 and report.requests == 11 and not report.failed
    assert len(server.requests) == 11
    parts = _sent(server.requests[0])  # each image after its caption, then the question
    assert [p if isinstance(p, str) else "<image>" for p in parts][:4] == [
        "Image 1:", "<image>", "Image 2:", "<image>",
    ]  # fmt: skip
    assert "Image 1 and Image 2" in parts[4] and max(parts[1].size) == 512
    schema = str(server.requests[0]["body"])
    assert "choice" in schema and KEY not in schema
    choices = ws.choices("p", source="vlm")
    assert len(choices) == 11 and set(choices["rater"]) == {RATER}
    assert choices["run_id"].nunique() == 1 and not choices["tie"].any()
    ledger = ws.vlm_ledger(report.run_id)
    assert len(ledger) == 11 and set(ledger["status"]) == {"ok"}
    assert report.spend_usd == pytest.approx(ledger["cost_usd"].sum()) and report.spend_usd > 0
    assert all(t.status == "done" for t in rater_trials(ws, "p", RATER))
    scores = ws.study_scores("p", source="vlm")
    assert scores.attrs["reliability"]["raters"] == 1 and scores["shown"].sum() == 22
    # a rerun has nothing left to judge; nothing is sent again
    again = _judge(ws, server, "p")
    assert (again.judged, again.requests, len(server.requests)) == (0, 0, 11)


def test_same_images_in_another_study_come_from_the_cache(ws, server: FakeVLMServer) -> None:  # type: ignore[no-untyped-def]
    for name in ("a", "b"):  # the same design and seed: the same trials
        ws.create_study(
            name, design="pairwise", question="coherence", pairs_per_image=2, raters_per_image=1, seed=7
        )
    _judge(ws, server, "a")
    second = _judge(ws, server, "b")
    assert second.cache_hits == second.judged == 11 and second.requests == 0 and second.spend_usd == 0
    a, b = ws.choices("a", source="vlm"), ws.choices("b", source="vlm")
    assert a["best"].tolist() == b["best"].tolist()


def test_best_worst_budget_and_invalid_answers(ws, server: FakeVLMServer) -> None:  # type: ignore[no-untyped-def]
    ws.create_study(
        "bw", design="best_worst", question="restorativeness", trials_per_image=4, raters_per_image=1,
        avoid_near_duplicates="rater", seed=4,
    )  # fmt: skip
    # the fake answers the middle of each list (best = worst); a script gives real answers
    server.script.extend(["out_of_range", ("answer", {"best": 1, "worst": 4})])
    report = _judge(ws, server, "bw", limit=2)
    assert report.judged == 1 and len(report.failed) == 1  # 99 is not a number shown
    failures = ws.failures(report.run_id)
    assert len(failures) == 1 and "two different numbers" in failures.iloc[0]["reason"]
    assert ws.runs("vlm_comparisons").loc[report.run_id, "status"] == "partial"
    images = [p for p in _sent(server.requests[0]) if isinstance(p, Image.Image)]
    assert len(images) == 4  # the four images of the trial, in its order
    row = ws.choices("bw", source="vlm").iloc[0]
    shown = [int(i) for i in row["items"].split()]
    assert (row["best"], row["worst"]) == (shown[0], shown[3])
    # the budget stops the run before the first request it could not pay for
    tight = _judge(ws, server, "bw", budget_usd=1e-9)
    assert tight.requests == 0 and "run budget" in (tight.stopped or "")
    ws.set_setting("vlm.kill_switch", True)
    killed = _judge(ws, server, "bw")
    assert killed.requests == 0 and "kill switch" in (killed.stopped or "")
    with ws.engine.connect() as connection:
        open_calls = connection.execute(sa.text("SELECT count(*) FROM vlm_calls WHERE status = 'reserved'"))
        assert open_calls.scalar_one() == 0


def test_price_must_be_known(ws) -> None:  # type: ignore[no-untyped-def]
    ws.create_study("p", design="pairwise", question="coherence", pairs_per_image=2, raters_per_image=1)
    with pytest.raises(PriceUnknownError):
        ws.judge_with_vlm("p", provider="openai", model="no-such-model")


def test_stub_provider_judges_free(ws) -> None:  # type: ignore[no-untyped-def]
    ws.create_study(
        "p", design="pairwise", question="coherence", pairs_per_image=2, raters_per_image=1, ties=True
    )
    report = ws.judge_with_vlm("p", provider="stub", model="stub")
    assert report.judged == 11 and report.spend_usd == 0
    assert set(ws.choices("p", source="vlm")["rater"]) == {"vlm:stub/stub@cmp-2"}


def test_composite_mode_is_one_image_and_another_rater(ws, server: FakeVLMServer) -> None:  # type: ignore[no-untyped-def]
    ws.create_study(
        "p", design="pairwise", question="spaciousness", pairs_per_image=2, raters_per_image=1, seed=3
    )
    separate = _judge(ws, server, "p", limit=2)
    composite = _judge(ws, server, "p", limit=2, images="composite")
    assert separate.rater == RATER and composite.rater == "vlm:openai/test-model@cmp-1"
    assert (separate.requests, composite.requests) == (2, 2)  # no cache shared between them
    picture = _sent_image(server.requests[2])
    assert picture.width > picture.height  # the two images side by side
    assert set(ws.choices("p", source="vlm")["rater"]) == {RATER, composite.rater}
    with pytest.raises(ArgumentError, match="images="):
        _judge(ws, server, "p", images="grid")


def test_anthropic_gets_the_images_as_image_blocks(ws, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from itagger_lib.vlm.ledger import set_price

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    set_price(ws, "anthropic", "test-claude", 1.0, 4.0)
    ws.create_study(
        "bw", design="best_worst", question="restorativeness", trials_per_image=2, raters_per_image=1,
        block_size=4, seed=5,
    )  # fmt: skip
    with FakeVLMServer() as fake:
        fake.script.extend([("answer", {"best": 2, "worst": 3})])
        report = ws.judge_with_vlm(
            "bw", provider="anthropic", model="test-claude", limit=1,
            provider_options={"base_url": fake.url},
        )  # fmt: skip
        parts = _sent(fake.requests[0])
    assert report.judged == 1 and not report.failed
    assert [p if isinstance(p, str) else "<image>" for p in parts[:8]] == [
        "Image 1:", "<image>", "Image 2:", "<image>", "Image 3:", "<image>", "Image 4:", "<image>",
    ]  # fmt: skip
    row = ws.choices("bw", source="vlm").iloc[0]
    shown = [int(i) for i in row["items"].split()]
    assert (row["best"], row["worst"]) == (shown[1], shown[2])
    # the reservation bounds what was billed: four images' tokens, not one
    ledger = ws.vlm_ledger(report.run_id)
    assert ledger["reserved_usd"].iloc[0] >= ledger["cost_usd"].iloc[0] > 0


def test_the_token_bound_counts_every_image_and_not_their_base64_as_text() -> None:
    from itagger_lib.vlm.base import VLMRequest
    from itagger_lib.vlm.registry import input_token_bound
    from itagger_lib.vlm.tokens import anthropic_image_tokens, openai_image_tokens

    data = base64.b64encode(b"x" * 30_000).decode()  # 40,000 characters a picture
    common = {
        "system": "s", "prompt": "p", "schema": {"type": "object"}, "image_jpeg": b"",
        "image_base64": data, "image_width": 512, "image_height": 384,
    }  # fmt: skip
    one = VLMRequest(**common)
    four = VLMRequest(
        **common, more_images=(data,) * 3, more_sizes=((384, 512),) * 3,
        image_captions=("Image 1:", "Image 2:", "Image 3:", "Image 4:"),
    )  # fmt: skip
    for provider, model, per_image in (
        ("anthropic", "claude-haiku-4-5", anthropic_image_tokens(384, 512)),
        ("openai", "gpt-4o-mini", openai_image_tokens("gpt-4o-mini", 384, 512)),
    ):
        extra = input_token_bound(provider, model, four) - input_token_bound(provider, model, one)
        # three more images by the provider's formula, plus the JSON of their parts and captions
        assert 3 * per_image <= extra <= 3 * per_image + 400, (provider, extra, per_image)
