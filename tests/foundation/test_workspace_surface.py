"""What a notebook sees of ``Workspace``: real signatures (Shift-Tab), docstrings, one call each.

Every public method shows the parameters of the domain function it calls, with the same
names, kinds, defaults and annotations, less what the workspace supplies itself (itself as
the context, its engine, store and user); none hides them behind ``*args``/``**kwargs``.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

from itagger_lib import Workspace
from itagger_lib.context import Context

# method → the function it calls
TARGETS = {
    "ingest": "itagger_lib.ingest:ingest",
    "check": "itagger_lib.check:check_store",
    "images": "itagger_lib.images:table",
    "image": "itagger_lib.images:row",
    "image_path": "itagger_lib.images:file_path",
    "near_duplicates": "itagger_lib.comparisons.phashes:near_duplicates",
    "split": "itagger_lib.comparisons.phashes:split",
    "runs": "itagger_lib.runs:runs_frame",
    "failures": "itagger_lib.runs:failures_frame",
    "get_setting": "itagger_lib.stored_settings:get_setting",
    "set_setting": "itagger_lib.stored_settings:set_setting",
    "status": "itagger_lib.overview:status",
    "run_science": "itagger_lib.science.pipeline:run_science",
    "metrics": "itagger_lib.science.results:metrics_frame",
    "load_codebook": "itagger_lib.codebook.storage:store_codebook",
    "codebook": "itagger_lib.codebook.storage:get_codebook",
    "create_study": "itagger_lib.comparisons.studies:create_study",
    "study_scores": "itagger_lib.comparisons.scores:study_scores",
    "choices": "itagger_lib.comparisons.frames:choices_frame",
    "judge_with_vlm": "itagger_lib.comparisons.vlm:judge_with_vlm",
    "add_ratings": "itagger_lib.ratings.imports:add_ratings",
    "ratings": "itagger_lib.ratings.frames:ratings_frame",
    "rate_with_vlm": "itagger_lib.vlm.rating:rate_with_vlm",
    "vlm_audit": "itagger_lib.vlm.audit:audit_vlm",
    "set_vlm_price": "itagger_lib.vlm.prices:set_price",
    "vlm_prices": "itagger_lib.vlm.prices:price_table",
    "vlm_ledger": "itagger_lib.vlm.ledger:ledger",
    "vlm_batches": "itagger_lib.vlm.batches:vlm_batches",
    "cancel_vlm_batches": "itagger_lib.vlm.batches:cancel_batches",
    "vlm_runs": "itagger_lib.vlm.primary:vlm_runs",
    "set_primary_vlm_run": "itagger_lib.vlm.primary:set_primary_run",
    "agreement": "itagger_lib.review.reading:agreement",
    "table": "itagger_lib.export.table:table",
    "export": "itagger_lib.export.write:export",
}
# What the workspace passes itself: the context, or its parts.
SUPPLIED = {"ctx", "engine", "store", "user"}
# Methods that are the workspace's own (lifetime, attributes), not a call into a room.
OWN = {"close", "session", "home", "user"}


def public_methods() -> list[str]:
    return sorted(name for name, _ in inspect.getmembers(Workspace) if not name.startswith("_"))


def _target(name: str) -> inspect.Signature:
    module, function = TARGETS[name].split(":")
    return inspect.signature(getattr(importlib.import_module(module), function))


def test_every_public_method_is_mapped() -> None:
    assert set(public_methods()) == set(TARGETS) | OWN


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_signature_shows_the_real_parameters(name: str) -> None:
    method = inspect.signature(getattr(Workspace, name))
    shown = [p for p in method.parameters.values() if p.name != "self"]
    assert all(p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in shown), f"ws.{name}{method}"
    wanted = [p for p in _target(name).parameters.values() if p.name not in SUPPLIED]
    assert [(p.name, p.kind, p.default, p.annotation) for p in shown] == [
        (p.name, p.kind, p.default, p.annotation) for p in wanted
    ], f"ws.{name}{method} does not show the parameters of {TARGETS[name]}{_target(name)}"
    assert method.return_annotation == _target(name).return_annotation


@pytest.mark.parametrize("name", public_methods())
def test_every_public_method_has_a_docstring(name: str) -> None:
    assert inspect.getdoc(getattr(Workspace, name)), f"ws.{name} has no docstring"


def test_the_domain_takes_a_context_never_the_workspace() -> None:
    """Every mapped function that takes the workspace names it ``ctx`` and types it ``Context``."""
    for name in TARGETS:
        first = next(iter(_target(name).parameters.values()))
        if first.name == "ctx":
            assert first.annotation == "Context", TARGETS[name]
    assert {"engine", "store", "user", "settings"} <= {name for name, _ in inspect.getmembers(Context)}
