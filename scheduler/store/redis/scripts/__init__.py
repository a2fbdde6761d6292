"""The Redis store's Lua scripts, each one atomic step of SPEC section 3, grouped by concern:
the lease (lease.py), claims and outcomes (claims.py), manual requests (requests.py) and the
ledger's shared Lua function (ledger.py). Callers import them from here.

Every record a script reads may be malformed (SPEC 3, rule 8): JSON is decoded under
`pcall`, numbers under `tonumber`, and a record that cannot be read is treated as absent
rather than raising, so one stray value never turns every call into an error. The store
moves such records aside on its next read.
"""

from .claims import CLAIM, FINISH, NOTE_ATTEMPT
from .ledger import LEADERSHIPS_KEPT, LEDGER
from .lease import ACQUIRE, FORMAT, RELEASE, RENEW
from .requests import REQUEST_TRIGGER

__all__ = ["ACQUIRE", "CLAIM", "FINISH", "FORMAT", "LEADERSHIPS_KEPT", "LEDGER", "NOTE_ATTEMPT", "RELEASE", "RENEW",
           "REQUEST_TRIGGER"]
