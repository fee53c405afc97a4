"""Every /api route of the task service, with a valid assertion."""

from __future__ import annotations

import re

from tests.task_service.signer import Api

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


async def test_create_returns_task_location_and_etag(api: Api) -> None:
    response = await api.request("POST", "/api/alice/tasks", json={"title": "  buy milk  ", "description": "2 litres"})
    assert response.status_code == 201
    task = response.json()
    assert set(task) == {"id", "user_id", "title", "description", "completed", "created_at", "updated_at"}
    assert task["user_id"] == "alice"
    assert task["title"] == "buy milk"
    assert task["description"] == "2 litres"
    assert task["completed"] is False
    assert ISO_Z.match(task["created_at"]) and ISO_Z.match(task["updated_at"])
    assert response.headers["location"] == f"/api/alice/tasks/{task['id']}"
    assert response.headers["etag"] == '"1"'


async def test_get_returns_the_task(api: Api) -> None:
    created = await api.create(title="read", completed=True)
    response = await api.request("GET", f"/api/alice/tasks/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created
    assert response.headers["etag"] == '"1"'


async def test_every_route_writes_a_task_in_the_same_bytes(api: Api) -> None:
    """List and create render rows directly (task_service/render.py), the other routes through TaskOut: one
    shape, byte for byte, escapes and non-ASCII text included."""
    title = 'quote " backslash \\ tab \t control \x01 é € 😀 \u2028 </script>'
    created = await api.request("POST", "/api/alice/tasks", json={"title": title, "description": "ünï"})
    fetched = await api.request("GET", f"/api/alice/tasks/{created.json()['id']}")
    listed = await api.request("GET", "/api/alice/tasks")
    assert created.content == fetched.content
    assert listed.content == b"[" + fetched.content + b"]"
    assert created.json()["title"] == title
    assert created.headers["content-type"] == fetched.headers["content-type"] == "application/json"


async def test_put_replaces_the_fields_sent_and_keeps_those_left_out(api: Api) -> None:
    created = await api.create(title="old", description="old text", completed=True)
    url = f"/api/alice/tasks/{created['id']}"
    response = await api.request("PUT", url, json={"title": "new"})
    assert response.status_code == 200
    task = response.json()
    assert (task["title"], task["description"], task["completed"]) == ("new", "old text", True)
    assert task["created_at"] == created["created_at"]
    assert task["updated_at"] > created["updated_at"]
    assert response.headers["etag"] == '"2"'
    assert (await api.request("GET", url)).json() == task


async def test_put_as_an_edit_form_sends_it_keeps_the_task_completed(api: Api) -> None:
    """The frontend's edit form sends `{title, description}` and never `completed`."""
    created = await api.create(title="done", description="d", completed=True)
    url = f"/api/alice/tasks/{created['id']}"
    response = await api.request("PUT", url, json={"title": "done, renamed", "description": "edited"})
    assert response.status_code == 200
    assert (response.json()["title"], response.json()["description"]) == ("done, renamed", "edited")
    assert response.json()["completed"] is True


async def test_put_with_every_field_replaces_every_field(api: Api) -> None:
    created = await api.create(title="old", description="old text", completed=True)
    url = f"/api/alice/tasks/{created['id']}"
    response = await api.request("PUT", url, json={"title": "new", "description": None, "completed": False})
    assert response.status_code == 200
    assert (response.json()["title"], response.json()["description"], response.json()["completed"]) == (
        "new",
        None,
        False,
    )


async def test_patch_changes_only_given_fields(api: Api) -> None:
    created = await api.create(title="keep", description="clear me")
    url = f"/api/alice/tasks/{created['id']}"
    response = await api.request("PATCH", url, json={"description": None})
    assert response.status_code == 200
    assert (response.json()["title"], response.json()["description"]) == ("keep", None)
    response = await api.request("PATCH", url, json={"completed": True})
    assert response.json()["completed"] is True
    assert response.json()["title"] == "keep"
    assert response.headers["etag"] == '"3"'


async def test_complete_toggles(api: Api) -> None:
    created = await api.create()
    url = f"/api/alice/tasks/{created['id']}/complete"
    first = await api.request("PATCH", url)
    second = await api.request("PATCH", url)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["completed"] is True
    assert second.json()["completed"] is False


async def test_delete_then_gone(api: Api) -> None:
    created = await api.create()
    url = f"/api/alice/tasks/{created['id']}"
    response = await api.request("DELETE", url)
    assert response.status_code == 204
    assert response.content == b""
    assert (await api.request("GET", url)).status_code == 404
    assert (await api.request("DELETE", url)).status_code == 404


async def test_missing_task_is_404(api: Api) -> None:
    for method, suffix, body in [
        ("GET", "", None),
        ("PUT", "", {"title": "x"}),
        ("PATCH", "", {"title": "x"}),
        ("DELETE", "", None),
        ("PATCH", "/complete", None),
    ]:
        response = await api.request(method, f"/api/alice/tasks/999{suffix}", json=body)
        assert response.status_code == 404, (method, suffix)
        assert response.json() == {"detail": "task not found"}


async def test_other_users_tasks_are_indistinguishable_from_missing(api: Api) -> None:
    alices = await api.create(user="alice", title="secret plan")
    url = f"/api/bob/tasks/{alices['id']}"
    for method, suffix, body in [
        ("GET", "", None),
        ("PUT", "", {"title": "mine now"}),
        ("PATCH", "", {"completed": True}),
        ("PATCH", "/complete", None),
        ("DELETE", "", None),
    ]:
        response = await api.request(method, url + suffix, user="bob", json=body)
        assert response.status_code == 404, (method, suffix)
        assert response.json() == {"detail": "task not found"}
    listing = await api.request("GET", "/api/bob/tasks", user="bob")
    assert listing.json() == []
    assert listing.headers["x-total-count"] == "0"
    unchanged = await api.request("GET", f"/api/alice/tasks/{alices['id']}")
    assert unchanged.json() == alices


async def test_unknown_path_and_trailing_slash_are_404_not_redirects(api: Api) -> None:
    assert (await api.request("GET", "/api/alice/tasks/")).status_code == 404
    assert (await api.request("GET", "/api/alice/other")).status_code == 404
    assert (await api.request("GET", "/nope")).json() == {"detail": "Not Found"}
