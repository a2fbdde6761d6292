"""Every key and channel name of the Redis store, in one frozen value.

Every key lives under `{namespace}:`; the braces are a Redis Cluster hash tag, so all keys
share one slot and each script touches keys of one slot only.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Keys:
    namespace: str
    leader: str = field(init=False)
    epoch: str = field(init=False)
    meta: str = field(init=False)
    slots: str = field(init=False)  # the watermarks
    inflight: str = field(init=False)
    paused: str = field(init=False)
    trigger: str = field(init=False)  # the queue of manual fires
    triggered: str = field(init=False)
    redrive: str = field(init=False)  # queued fires of named slots: in-flight field -> request
    quarantine: str = field(init=False)
    sources: str = field(init=False)  # refresh and accept requests of the job sources
    sources_state: str = field(init=False)  # each replica's view of its job sources, for status
    released: str = field(init=False)  # a channel: the lease was let go
    wake: str = field(init=False)  # a channel: the leader should look at the queue now
    audit: str = field(init=False)  # the audit log, newest first (audit.py)
    audit_seq: str = field(init=False)  # its entries' ids
    job_prefix: str = field(init=False)
    history_prefix: str = field(init=False)  # the lists of format 2's history, no longer written
    runs_prefix: str = field(init=False)  # the ledger: a hash per job, entry id -> JSON
    runs_at_prefix: str = field(init=False)  # the ledger's order: a sorted set per job, id by slot
    leaderships: str = field(init=False)  # the last acquisitions of the lease, newest first

    def __post_init__(self) -> None:
        ns = "{" + self.namespace + "}:"
        for name in ("leader", "epoch", "meta", "slots", "inflight", "paused", "trigger", "triggered", "redrive",
                     "quarantine", "sources", "sources_state", "released", "wake", "leaderships"):
            object.__setattr__(self, name, ns + name)  # frozen: the derived names are set once, here
        object.__setattr__(self, "audit", ns + "audit")
        object.__setattr__(self, "audit_seq", ns + "audit_seq")
        object.__setattr__(self, "job_prefix", ns + "job:")
        object.__setattr__(self, "history_prefix", ns + "history:")
        object.__setattr__(self, "runs_prefix", ns + "runs:")
        object.__setattr__(self, "runs_at_prefix", ns + "runs_at:")

    @property
    def prefix(self) -> str:
        """What every key and channel of the namespace starts with."""
        return "{" + self.namespace + "}:"

    def job(self, name: str) -> str:
        return self.job_prefix + name

    def history(self, name: str) -> str:
        return self.history_prefix + name

    def runs(self, name: str) -> str:
        return self.runs_prefix + name

    def runs_at(self, name: str) -> str:
        return self.runs_at_prefix + name

    def types(self, jobs: Collection[str] = ()) -> dict[str, str]:
        """The type each key must hold ("counter": a string of digits), with the record and
        history keys of `jobs`: what the quarantine checks after an error reply."""
        out = {
            self.leader: "string", self.epoch: "counter", self.meta: "hash", self.slots: "hash",
            self.inflight: "hash", self.paused: "set", self.trigger: "list", self.triggered: "hash",
            self.redrive: "hash",
            self.quarantine: "hash", self.sources: "hash", self.sources_state: "hash", self.leaderships: "list",
        }
        out[self.audit], out[self.audit_seq] = "list", "counter"
        for job in jobs:
            out[self.job(job)] = "hash"
            out[self.history(job)] = "list"
            out[self.runs(job)] = "hash"
            out[self.runs_at(job)] = "zset"
        return out
