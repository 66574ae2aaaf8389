"""The public Slack payloads (``../shared/corpora/slack`` beside the repository), each as a participant's DM.

Gated: skipped, saying so, where the corpora are not there (they are data to read, never copied into
the repository). Reading and grading are ``bench/slack_corpus.py``'s, so the benchmark and this gate agree.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import slack_corpus

CORPORA = Path(__file__).parents[2] / ".." / "shared" / "corpora"

pytestmark = pytest.mark.skipif(not slack_corpus.available(CORPORA),
                                reason=f"skipped: ../shared/corpora not found (looked in {CORPORA.resolve()})")


@pytest.fixture(scope="module")
def graded() -> dict:
    return slack_corpus.score(CORPORA)


def test_every_payload_is_there(graded):
    assert {k: v["cases"] for k, v in graded["by"].items()} == {
        "event": 8, "reference": 6, "forward": 1, "slackbot": 1, "users.info": 2}


def test_every_payload_is_ignored_or_recorded_as_the_person_saw_it(graded):
    wrong = [(r["case"], r["expected"], r["got"]) for r in graded["rows"] if not r["ok"]]
    assert wrong == []
