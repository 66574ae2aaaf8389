"""Who takes part: a static list, a list gathered earlier in the run, or a dataset query."""

import json

from tests.conftest import answer, people

TEAM_CSV = """email,name,role,level,active,team
ann@example.com,Ann,engineer,3,true,core
ben@example.com,Ben,engineer,1,true,core
cat@example.com,Cat,designer,4,true,web
dev@example.com,Dev,engineer,10,true,web
eve@example.com,Eve,engineer,5,false,core
fay@example.com,Fay,engineer,7,true,data
"""

BY_QUERY = """
id: senior-check
name: Senior engineers check-in
owner: lead@example.com
template:
  fields: [{key: mood, prompt: How is it going?}]
  dataset: team
  filter: role = 'engineer' and active = true and level >= 3 and team in ['core', 'web']
  participant_field: email
  chase: {interval: 1h, max_chases: 1}
"""

FROM_GATHERED = """
id: review
name: Review round
owner: lead@example.com
template:
  fields: [{key: verdict, prompt: Your verdict?}]
  participants_from: gathered.reviewer_list
"""


def participants(engine, rid):
    return [s["participant_id"] for s in engine.run_view(rid)["subtasks"]]


def test_a_dataset_query_selects_participants(engine, drain, taskbot_cli, tmp_path):
    team = tmp_path / "team.csv"
    team.write_text(TEAM_CSV)
    assert taskbot_cli("datasets", "import", "team", str(team), check=True).stdout.strip() == \
        "imported 6 rows into dataset team"
    spec = tmp_path / "senior.yaml"
    spec.write_text(BY_QUERY)
    taskbot_cli("tasks", "apply", str(spec), check=True)
    rid = engine.runs.trigger("senior-check")
    drain()
    # ben is level 1, cat a designer, eve inactive, fay on another team; dev's level 10 compares as a number
    assert participants(engine, rid) == ["ann@example.com", "dev@example.com"]


def test_a_filter_with_a_syntax_error_is_refused_at_apply(engine, taskbot_cli, tmp_path):
    spec = tmp_path / "broken.yaml"
    spec.write_text(BY_QUERY.replace("level >= 3 and", "level >= and"))
    result = taskbot_cli("tasks", "apply", str(spec))
    assert result.returncode == 2
    assert result.stderr.startswith("taskbot: error: template.filter: filter:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert engine.store.list_definitions() == []


def test_participants_gathered_from_the_trigger_data(engine, drain, taskbot_cli, tmp_path):
    people(engine, "rae@example.com", "sam@example.com")
    spec = tmp_path / "review.yaml"
    spec.write_text(FROM_GATHERED)
    taskbot_cli("tasks", "apply", str(spec), check=True)
    out = taskbot_cli("run", "review", "--data", "reviewer_list=rae@example.com, sam@example.com,rae@example.com",
                      check=True)
    rid = out.stdout.strip().splitlines()[-1]
    drain()
    assert participants(engine, rid) == ["rae@example.com", "sam@example.com"]


def test_no_participants_fails_the_run_saying_so(engine, drain, taskbot_cli):
    engine.apply_definition(FROM_GATHERED)
    rid = engine.runs.trigger("review", {})
    drain()
    status = json.loads(taskbot_cli("status", rid, "--json", check=True).stdout)
    assert status["status"] == "failed"
    assert "no participants" in status["error_message"]
    assert [n["kind"] for n in engine.store.notifications("lead@example.com")] == ["task_failed"]


def test_a_participant_without_a_usable_channel_fails_alone(engine, drain, wait_for):
    people(engine, "rae@example.com")  # on the web channel; nobody@example.com has no contact and no email channel
    engine.apply_definition(FROM_GATHERED.replace("participants_from: gathered.reviewer_list",
                                                  "participants: [rae@example.com, nobody@example.com]"))
    rid = engine.runs.trigger("review")
    drain()
    subs = {s["participant_id"]: s for s in engine.run_view(rid)["subtasks"]}
    assert subs["nobody@example.com"]["status"] == "failed"
    assert "no usable channel" in subs["nobody@example.com"]["reason"]
    answer(engine, subs["rae@example.com"], "ship it", "v1")
    drain()
    view = engine.run_view(rid)
    assert view["status"] == "completed"
    assert "**Failed:** nobody@example.com (no usable channel" in view["deliverables"][0]["content"]


WORKFLOW = """
id: peer-review
name: Peer review
output_type: report
owner: lead@example.com
workflow:
  - type: conversation
    instructions: Who should review the design doc?
    fields:
      - {key: reviewer_list, prompt: "List the reviewers' emails, separated by commas.", type: list}
  - type: task
    instructions: Please review the design doc.
    fields: [{key: verdict, prompt: Approve or request changes?}]
    participants_from: gathered.reviewer_list
    chase: {interval: 1h, max_chases: 1}
  - type: compile
"""


def test_workflow_owner_names_reviewers_then_they_answer_then_compile(engine, drain):
    people(engine, "lead@example.com", "rae@example.com", "sam@example.com")
    engine.apply_definition(WORKFLOW)
    rid = engine.runs.trigger("peer-review")
    drain()
    (owner_chat,) = engine.run_view(rid)["subtasks"]
    assert owner_chat["participant_id"] == "lead@example.com"
    assert "List the reviewers" in owner_chat["conversation"][0]["text"]
    answer(engine, owner_chat, "rae@example.com, sam@example.com", "o1")
    drain()

    view = engine.run_view(rid)
    assert view["gathered"]["reviewer_list"] == ["rae@example.com", "sam@example.com"]
    reviewers = {s["participant_id"]: s for s in view["subtasks"] if s["kind"] == "task"}
    assert list(reviewers) == ["rae@example.com", "sam@example.com"]
    assert "Please review the design doc." in reviewers["rae@example.com"]["conversation"][0]["text"]
    answer(engine, reviewers["rae@example.com"], "Approve", "r1")
    answer(engine, reviewers["sam@example.com"], "Request changes", "s1")
    drain()

    view = engine.run_view(rid)
    assert view["status"] == "completed"
    assert view["gathered"]["tasks"] == {"rae@example.com": {"verdict": "Approve"},
                                         "sam@example.com": {"verdict": "Request changes"}}
    report = view["deliverables"][0]["content"]
    assert "| rae | Approve | completed |" in report
    assert "| sam | Request changes | completed |" in report
