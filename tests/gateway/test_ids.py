"""Unique ids (gateway/policy/ids.py): never repeated within a process, nor between a process and its fork."""

from __future__ import annotations

import os

from gateway.policy.ids import UniqueIds


def test_ids_do_not_repeat_within_a_process() -> None:
    ids = UniqueIds()
    minted = [ids.next() for _ in range(10_000)]
    assert len(set(minted)) == len(minted)


def test_two_generators_have_different_prefixes() -> None:
    assert UniqueIds().next().split(".")[0] != UniqueIds().next().split(".")[0]


def test_a_forked_child_never_mints_its_parents_next_ids() -> None:
    """Without the fork hook the child would continue the parent's counter under the same prefix, so parent
    and child would both mint the same next ids (and an upstream would refuse one of them as a replay)."""
    ids = UniqueIds()
    ids.next()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: mint its next ids and hand them over
        os.close(read_end)
        os.write(write_end, "\n".join(ids.next() for _ in range(100)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child = set(pipe.read().split("\n"))
    os.waitpid(pid, 0)
    parent = {ids.next() for _ in range(100)}
    assert len(child) == 100 and not child & parent
