"""Signals to the daemon as a process: SIGHUP never ends it, whatever its configuration."""

from __future__ import annotations

import json
import signal
import threading

from tests.e2e import log_events, standalone_env
from tests.support import wait_until


def test_sighup_with_env_jobs_only_is_logged_and_ignored_and_cuts_off_no_fire(receiver, daemon_factory, tmp_path):
    answer = threading.Event()

    def slow(request):
        answer.wait(10)  # the fire is in flight until the test lets it answer
        return 200

    receiver.set_handler(slow)
    env = standalone_env(receiver, tmp_path / "state.db", {"tick": {"SCHEDULE": "every 1s", "URL": "/tick"}})
    daemon = daemon_factory(env, cwd=tmp_path)
    receiver.wait_for_count(1, timeout=15)  # a fire waits on the receiver now

    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for_output("SIGHUP", timeout=10)  # fails at once if the signal ended the process
    answer.set()
    first = receiver.requests[0].header("idempotency-key")
    wait_until(lambda: [e for e in log_events(daemon, "fired") if e.get("slot") in first], timeout=10,
               message="the fire in flight at the SIGHUP never finished")
    assert daemon.running

    daemon.terminate()
    assert daemon.wait(15) == 0
    hup = [line for line in daemon.output().splitlines() if "SIGHUP" in line]
    assert len(hup) == 1 and "ignored" in hup[0], hup
    (fired,) = [e for e in log_events(daemon, "fired") if e.get("slot") in first]
    assert fired["outcome"] == "ok"
    assert log_events(daemon, "released the lease")


def test_sighup_reads_the_jobs_file_again(receiver, daemon_factory, tmp_path):
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps({"jobs": [{"name": "a", "schedule": "every 1s", "url": "/a"}]}))
    env = standalone_env(receiver, tmp_path / "state.db", {}, jobs_file=str(jobs))
    daemon = daemon_factory(env, cwd=tmp_path)
    receiver.wait_for(lambda rs: any(r.path == "/a" for r in rs), timeout=15)

    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for_output("SIGHUP: reading the job sources again", timeout=10)
    daemon.terminate()
    assert daemon.wait(15) == 0
