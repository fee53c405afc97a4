"""Path templates: the grammar of `{name}`, `{name:int}`, `{name:uuid}` and literals, and what each accepts."""

from __future__ import annotations

import pytest

from gateway.policy.templates import TemplateError, parse_template

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.mark.parametrize(
    ("template", "path", "params"),
    [
        ("/api/{user_id}/tasks", "/api/alice/tasks", {"user_id": "alice"}),
        ("/api/{user_id}/tasks", "/api/A-_9/tasks", {"user_id": "A-_9"}),
        ("/api/{user_id}/tasks", "/api/" + "a" * 128 + "/tasks", {"user_id": "a" * 128}),
        ("/api/{u}/tasks/{id:int}", "/api/b/tasks/1", {"u": "b", "id": "1"}),
        ("/api/{u}/tasks/{id:int}", "/api/b/tasks/" + "9" * 18, {"u": "b", "id": "9" * 18}),
        ("/jobs/{job:uuid}", f"/jobs/{UUID}", {"job": UUID}),
        ("/jobs/{job:uuid}", f"/jobs/{UUID.upper()}", {"job": UUID.upper()}),
        ("/status", "/status", {}),
        ("/", "/", {}),
        ("/v1.2/{x}/~me", "/v1.2/y/~me", {"x": "y"}),
    ],
)
def test_a_template_matches_and_extracts_its_parameters(template: str, path: str, params: dict[str, str]) -> None:
    assert parse_template(template).match(path) == params


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("/api/{user_id}/tasks", "/api/" + "a" * 129 + "/tasks"),  # the user-id grammar's length bound
        ("/api/{user_id}/tasks", "/api/al.ice/tasks"),
        ("/api/{user_id}/tasks", "/api/al~ice/tasks"),
        ("/api/{user_id}/tasks", "/api/alice/Tasks"),  # literals are exact, case included
        ("/api/{user_id}/tasks", "/API/alice/tasks"),
        ("/api/{user_id}/tasks", "/api/alice/tasks/1"),  # anchored at both ends
        ("/api/{user_id}/tasks", "/x/api/alice/tasks"),
        ("/t/{id:int}", "/t/0"),
        ("/t/{id:int}", "/t/01"),
        ("/t/{id:int}", "/t/-1"),
        ("/t/{id:int}", "/t/+1"),
        ("/t/{id:int}", "/t/" + "9" * 19),
        ("/t/{id:int}", "/t/1a"),
        ("/j/{j:uuid}", "/j/" + UUID[:8] + UUID[8:].upper()),  # mixed case is not canonical
        ("/j/{j:uuid}", "/j/" + UUID.replace("-", "")),
        ("/j/{j:uuid}", "/j/{" + UUID + "}"),
        ("/j/{j:uuid}", "/j/" + UUID[:-1] + "g"),
        ("/j/{j:uuid}", "/j/" + UUID + "0"),
        ("/status", "/status/x"),
        ("/", "/x"),
    ],
)
def test_a_template_refuses_what_its_grammar_does_not_allow(template: str, path: str) -> None:
    assert parse_template(template).match(path) is None


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("api/{u}", "starts with '/'"),
        ("", "starts with '/'"),
        ("/a?b=1", "no query or fragment"),
        ("/a#b", "no query or fragment"),
        ("/a/{u}x", "a parameter is a whole segment"),
        ("/a/x{u}", "a parameter is a whole segment"),
        ("/a/{u", "a parameter is a whole segment"),
        ("/a/u}", "a parameter is a whole segment"),
        ("/a/{}", "a parameter is a whole segment"),
        ("/a/{1u}", "a parameter is a whole segment"),
        ("/a/{u-v}", "a parameter is a whole segment"),
        ("/a/{u:float}", "unknown type 'float'"),
        ("/a/{u:}", "unknown type ''"),
        ("/a/{u:INT}", "unknown type 'INT'"),
        ("/a/{u}/{u:int}", "'u' appears twice"),
        ("/a//b", "empty or dot segment"),
        ("/a/", "empty or dot segment"),
        ("/a/../b", "empty or dot segment"),
        ("/a/./b", "empty or dot segment"),
        ("/a%2fb", "character that is not allowed"),
        ("/a;b", "character that is not allowed"),
        ("/a b", "character that is not allowed"),
        ("/é", "character that is not allowed"),
        ("//a", "origin-form"),
        ("/" + "a" * 3000, "too long"),
    ],
)
def test_a_template_that_does_not_parse_says_why(template: str, problem: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(template)
    assert problem in str(caught.value)


def test_the_label_drops_parameter_types() -> None:
    assert parse_template("/api/{user_id}/tasks/{id:int}/complete").label == "/api/{user_id}/tasks/{id}/complete"
    assert parse_template("/jobs/{job:uuid}").label == "/jobs/{job}"
    assert parse_template("/").label == "/"


@pytest.mark.parametrize(
    ("first", "later", "covers"),
    [
        ("/a/{x}", "/a/b", True),
        ("/a/{x}", "/a/{y:int}", True),
        ("/a/{x}", "/a/{y:uuid}", True),
        ("/a/{x:int}", "/a/7", True),
        ("/a/{x:int}", "/a/07", False),
        ("/a/{x:int}", "/a/{y}", False),
        ("/a/{x:int}", "/a/{y:uuid}", False),
        ("/a/{x:uuid}", f"/a/{UUID}", True),
        ("/a/{x:uuid}", "/a/{y:uuid}", True),
        ("/a/b", "/a/{x}", False),
        ("/a/b", "/a/b", True),
        ("/a/b", "/a/c", False),
        ("/a/{x}", "/a/{x}/c", False),
        ("/{x}/{y}", "/a/b", True),
        ("/a/{x}", "/a/" + "b" * 129, False),  # too long for {x}: the later route still has that path
    ],
)
def test_covers_says_whether_a_later_template_could_ever_match(first: str, later: str, covers: bool) -> None:
    assert parse_template(first).covers(parse_template(later)) is covers
