"""Who may see and do what: the admin everything, a person only what they own, by any identity they have."""

import pytest

from engine.access import (
    ACTIONS,
    ADMIN_ACTIONS,
    OWNER_ACTIONS,
    Caller,
    admin,
    may,
    notification_owners,
    person,
    visible_runs,
    visible_schedules,
    visible_tasks,
)
from engine.model import Contact, TaskDefinition

LEE = person(Contact(id="lee", email="Lee@Example.com", slack_user_id="U_LEE", telegram_chat_id="4242"))
ANN = person(Contact(email="ann@example.com"))


def task(task_id: str, owner: str | None) -> TaskDefinition:
    return TaskDefinition.model_validate({"id": task_id, "name": task_id, "owner": owner,
                                          "template": {"participants": ["x@example.com"],
                                                       "fields": [{"key": "a", "prompt": "A?"}]}})


@pytest.mark.parametrize("owner", ["lee", "lee@example.com", "LEE@example.com", "U_LEE", "4242"])
def test_a_person_owns_what_names_them_by_any_identity(owner):
    assert all(may(LEE, action, owner) for action in OWNER_ACTIONS)
    assert not any(may(ANN, action, owner) for action in ACTIONS)


def test_only_the_admin_defines_tasks_edits_the_directory_and_makes_tokens():
    for action in ADMIN_ACTIONS:
        assert may(admin(), action, None)
        assert not may(LEE, action, "lee")  # owning a task is not enough


def test_what_nobody_owns_is_the_admins_alone():
    assert may(admin(), "run", None)
    assert not may(LEE, "run", None)
    assert not may(LEE, "see", "")
    assert not may(Caller(), "see", "unknown")


def test_an_unknown_action_is_a_programming_error_not_a_refusal():
    with pytest.raises(ValueError, match="unknown action 'delete_everything'"):
        may(admin(), "delete_everything", None)


def test_lists_keep_only_what_the_caller_owns_in_their_order():
    tasks = [task("a", "lee@example.com"), task("b", "ann@example.com"), task("c", None), task("d", "U_LEE")]
    assert [t.id for t in visible_tasks(LEE, tasks)] == ["a", "d"]
    assert [t.id for t in visible_tasks(admin(), tasks)] == ["a", "b", "c", "d"]
    runs = [{"id": "r1", "owner": "ann@example.com"}, {"id": "r2", "owner": "4242"}, {"id": "r3", "owner": None}]
    assert [r["id"] for r in visible_runs(LEE, runs)] == ["r2"]
    schedules = [{"id": "s1", "task_id": "a"}, {"id": "s2", "task_id": "b"}, {"id": "s3", "task_id": "gone"}]
    owners = {t.id: t.owner for t in tasks}
    assert [s["id"] for s in visible_schedules(ANN, schedules, owners)] == ["s2"]
    assert [s["id"] for s in visible_schedules(admin(), schedules, owners)] == ["s1", "s2", "s3"]


def test_a_persons_notifications_are_those_of_each_of_their_identities():
    assert notification_owners(LEE) == sorted({"lee", "lee@example.com", "U_LEE", "4242"})
    assert LEE.id == "lee"
    assert Caller(frozenset({"U_B", "a@example.com"})).id == "U_B"
