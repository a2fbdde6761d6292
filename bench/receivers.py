"""The HTTP receiver a benchmark's daemons fire at (`harness.fast_receiver`), chosen by
`--receiver` and stopped when the benchmark ends."""

from __future__ import annotations

from bench import lifecycle
from harness.fast_receiver import AiohttpReceiver, RawReceiver


def make_receiver(kind: str, hold_ms: float = 0.0) -> AiohttpReceiver:
    """The receiver `--receiver` names, stopped when the benchmark ends."""
    receiver = RawReceiver(hold_ms) if kind == "raw" else AiohttpReceiver(hold_ms)
    lifecycle.on_cleanup(receiver.stop)
    return receiver


def add_receiver_arg(ap, default: str = "raw") -> None:
    ap.add_argument("--receiver", choices=("aiohttp", "raw"), default=default,
                    help=f"the HTTP receiver: aiohttp's low-level server, or a bare asyncio protocol that costs "
                         f"several times less per request (default {default})")
