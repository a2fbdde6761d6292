"""A standalone state file that is damaged or is not a database: no retry mends it, so the
daemon exits 78 with a sentence that names the file and says to move it aside, and leaves
the file as it found it."""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

from scheduler.store.sqlite.store import LocalStore
from scheduler.model import Claim
from scheduler.store.sqlite.schema import StateDamaged
from tests.e2e import standalone_env

PAGE = 4096


def run(coro):
    return asyncio.run(coro)


def state_file(path) -> bytes:
    """A real state file with enough rows to fill several pages; returns its bytes."""

    async def fill():
        store = LocalStore(str(path), replica_id="filler")
        epoch = await store.acquire()
        await store.claim(epoch, [Claim(f"job-{i}", 100) for i in range(300)])
        await store.close()

    run(fill())
    (path.parent / (path.name + ".lock")).unlink()
    return path.read_bytes()


def damage(path, how: str) -> None:
    data = state_file(path)
    noise = random.Random(how)
    if how == "random bytes":
        path.write_bytes(noise.randbytes(len(data)))
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:  # the first page (the header and the schema) intact, every other page noise
        path.write_bytes(data[:PAGE] + noise.randbytes(len(data) - PAGE))


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_damaged_file_is_reported_once_and_never_touched_again(tmp_path):
    path = tmp_path / "state.db"
    damage(path, "pages")
    before = digest(path)
    told: list[Exception] = []

    async def go():
        store = LocalStore(str(path), replica_id="a", on_damaged=told.append)
        await store.open()  # the header and schema read fine
        with pytest.raises(StateDamaged) as caught:
            await store.acquire()
        for call in (store.acquire(), store.load(["j"]), store.status(["j"]), store.set_paused("j", True)):
            with pytest.raises(StateDamaged):
                await call
        await store.close()
        return str(caught.value)

    problem = run(go())
    assert str(path) in problem and "move it aside" in problem
    assert [str(t) for t in told] == [problem]
    assert digest(path) == before


@pytest.mark.parametrize("how", ["random bytes", "truncated", "pages"])
def test_the_daemon_exits_78_on_a_damaged_state_file_and_leaves_it_as_it_was(receiver, daemon_factory, tmp_path, how):
    path = tmp_path / "state.db"
    damage(path, how)
    before = digest(path)
    env = standalone_env(receiver, path, {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"}})
    daemon = daemon_factory(env, cwd=tmp_path)
    assert daemon.wait(15) == 78
    out = daemon.output()
    assert f"config error: SCHEDULER_STATE_FILE: the state file {path} is damaged" in out
    assert "move it aside" in out
    assert "Traceback" not in out
    assert digest(path) == before
    assert receiver.requests == []
