"""Optimistic concurrency: ETag on every task response, If-Match on every write."""

from __future__ import annotations

from typing import Any

import pytest

from tests.task_service.signer import Api

WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("PUT", "", {"title": "replaced"}),
    ("PATCH", "", {"title": "patched"}),
    ("PATCH", "/complete", None),
    ("DELETE", "", None),
]


async def _task_after_one_update(api: Api) -> tuple[str, dict[str, Any]]:
    created = await api.create(title="original")
    url = f"/api/alice/tasks/{created['id']}"
    updated = await api.request("PATCH", url, json={"description": "v2"})
    assert updated.headers["etag"] == '"2"'
    return url, updated.json()


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
async def test_stale_if_match_is_412_and_changes_nothing(
    api: Api, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    url, current = await _task_after_one_update(api)
    response = await api.request(method, url + suffix, json=body, headers={"If-Match": '"1"'})
    assert response.status_code == 412
    assert response.json() == {"detail": "the task has changed since the version given in If-Match"}
    after = await api.request("GET", url)
    assert after.json() == current
    assert after.headers["etag"] == '"2"'


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
@pytest.mark.parametrize("if_match", ['"2"', '"1", "2"', "*"])
async def test_current_if_match_succeeds(
    api: Api, method: str, suffix: str, body: dict[str, Any] | None, if_match: str
) -> None:
    url, _ = await _task_after_one_update(api)
    response = await api.request(method, url + suffix, json=body, headers={"If-Match": if_match})
    assert response.status_code == (204 if method == "DELETE" else 200)
    if method != "DELETE":
        assert response.headers["etag"] == '"3"'


@pytest.mark.parametrize("if_match", ['W/"2"', "2", '"2', "garbage", '"two"'])
async def test_weak_or_malformed_if_match_never_matches(api: Api, if_match: str) -> None:
    url, current = await _task_after_one_update(api)
    response = await api.request("PATCH", url, json={"title": "nope"}, headers={"If-Match": if_match})
    assert response.status_code == 412
    assert (await api.request("GET", url)).json() == current


async def test_if_match_on_a_missing_task_is_404(api: Api) -> None:
    response = await api.request("PUT", "/api/alice/tasks/77", json={"title": "x"}, headers={"If-Match": '"1"'})
    assert response.status_code == 404


async def test_if_match_on_another_users_task_is_404_not_412(api: Api) -> None:
    created = await api.create(user="alice")
    response = await api.request("DELETE", f"/api/bob/tasks/{created['id']}", user="bob", headers={"If-Match": '"9"'})
    assert response.status_code == 404


async def test_etag_follows_each_version(api: Api) -> None:
    created = await api.create()
    url = f"/api/alice/tasks/{created['id']}"
    for expected in ('"2"', '"3"', '"4"'):
        response = await api.request("PATCH", url + "/complete")
        assert response.headers["etag"] == expected
        assert (await api.request("GET", url)).headers["etag"] == expected


async def test_two_tabs_cannot_silently_overwrite_each_other(api: Api) -> None:
    created = await api.create(title="shared")
    url = f"/api/alice/tasks/{created['id']}"
    tab_a = await api.request("GET", url)
    tab_b = await api.request("GET", url)
    first = await api.request("PUT", url, json={"title": "from A"}, headers={"If-Match": tab_a.headers["etag"]})
    second = await api.request("PUT", url, json={"title": "from B"}, headers={"If-Match": tab_b.headers["etag"]})
    assert (first.status_code, second.status_code) == (200, 412)
    assert (await api.request("GET", url)).json()["title"] == "from A"


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [('"2"', 304), ('W/"2"', 304), ('"1", "2"', 304), ("*", 304), ('"1"', 200), ('W/"1"', 200), ("junk", 200)],
)
async def test_if_none_match_revalidates_a_cached_copy(api: Api, if_none_match: str, status: int) -> None:
    url, current = await _task_after_one_update(api)
    response = await api.request("GET", url, headers={"If-None-Match": if_none_match})
    assert response.status_code == status
    assert response.headers["etag"] == '"2"'
    if status == 304:
        assert response.content == b""
    else:
        assert response.json() == current


async def test_if_none_match_on_another_users_task_is_404(api: Api) -> None:
    created = await api.create(user="alice")
    response = await api.request("GET", f"/api/bob/tasks/{created['id']}", user="bob", headers={"If-None-Match": "*"})
    assert response.status_code == 404
