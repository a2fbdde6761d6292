"""Failures told at once (SPEC section 8): the leader's events, POSTed to SCHEDULER_NOTIFY_URL.

events.py decides what to tell (a fire's outcome and its job's failure streak, a source held
or unreadable) and builds each event; sender.py queues them, signs them like the fires and
sends them from a background task, retrying with backoff, so a fire only ever appends."""
