"""The public email corpora (``../shared/corpora`` beside the repository): the reply score and every bounce.

Gated: skipped, saying so, where the corpora are not there (they are data to read, never copied into
the repository). Scoring and reading are ``bench/corpus.py``'s, so the benchmark and this gate agree.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import corpus

CORPORA = Path(__file__).parents[2] / ".." / "shared" / "corpora"
TARGET = 95.0

pytestmark = pytest.mark.skipif(not corpus.available(CORPORA),
                                reason=f"skipped: ../shared/corpora not found (looked in {CORPORA.resolve()})")


@pytest.fixture(scope="module")
def graded() -> dict:
    return corpus.score(CORPORA)


def test_the_corpora_are_all_there(graded):
    assert sum(graded["by"]["all"].values()) == 167
    assert {k.partition(":")[2] for k in graded["by"] if k.startswith("corpus:")} == {
        "crisp", "zapier", "alfonsrv", "github", "talon"}


@pytest.mark.parametrize("name", ["crisp", "zapier", "alfonsrv", "github", "talon"])
def test_each_corpus_scores_at_least_95_percent_correct_or_close(graded, name):
    counts = graded["by"][f"corpus:{name}"]
    wrong = [w["id"] for w in graded["wrong"] if w["id"].startswith(f"{name}__") or
             (name == "zapier" and w["id"].startswith("zapier-it__"))]
    assert corpus.share(counts) >= TARGET, f"{name}: {counts}, wrong: {wrong}"


def test_every_language_scores_at_least_95_percent(graded):
    below = {k: v for k, v in graded["by"].items() if k.startswith("lang:") and corpus.share(v) < TARGET}
    assert below == {}


@pytest.fixture(scope="module")
def checked() -> list[dict]:
    return corpus.check_bounces(CORPORA)


def test_every_bounce_and_auto_reply_is_recognised(checked):
    assert len(checked) == 44
    assert [c["id"] for c in checked if not c["recognised"]] == []  # never answered, never an answer


def test_every_bounce_says_whom_it_is_for_and_no_auto_reply_is_taken_for_one(checked):
    bounces = [c for c in checked if c["kind"] == "bounce"]
    assert [c["id"] for c in bounces if not c["bounce"]] == []
    assert [c["id"] for c in bounces if not c["bounce"]["recipient"]] == []
    assert [c["id"] for c in checked if c["kind"] == "autoreply" and c["bounce"]] == []


def test_a_delay_is_no_hard_bounce(checked):
    delays = {"lhost-gmail-06", "lhost-exim-38", "lhost-sendmail-29", "rfc3464-07"}
    hard = {c["id"] for c in checked if c["bounce"] and c["bounce"]["hard"]}
    assert delays.isdisjoint(hard)
    assert {"lhost-qmail-01", "lhost-gmail-01", "lhost-postfix-01", "lhost-exim-01", "lhost-office365-01"} <= hard
