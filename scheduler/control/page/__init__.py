"""The status page at `/`: one HTML document built from the jobs view, with its style and its
one small script inline (no external assets, no build step), readable on a phone.

document.py assembles the page; triage.py sorts and counts the jobs (failing first); cards.py
draws one job with its ledger; text.py escapes every value; style.py and script.py hold the
inline CSS and the script (filter, buttons)."""

from .document import render

__all__ = ["render"]
