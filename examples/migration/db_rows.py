"""From DB-row triggers to cron-sidecar: the app keeps its table of scheduled tasks and
serves it as the sidecar's jobs document; the sidecar fires the rows.

Before, a poller thread in every replica read the rows, ran those whose next_run_at had
passed and wrote next_run_at back (two replicas: run twice; a crash between the two: lost):

    for name, cron, task, next_run_at in db.execute("SELECT ... WHERE enabled AND next_run_at <= ?", (now,)):
        TASKS[task]()
        db.execute("UPDATE scheduled_tasks SET next_run_at = ? WHERE name = ?", (croniter(cron, now).get_next(), name))

After, the rows are the document (GET /internal/cron-jobs), next_run_at is gone (the sidecar
keeps the watermark of each job), and each task is an HTTP route:

    APP_TOKEN=tok APP_SIGNING_SECRET=whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUE= uv run python examples/migration/db_rows.py &
    SCHEDULER_API_TOKEN=tok SCHEDULER_SIGNING_SECRET=whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUE= \
      SCHEDULER_JOBS_URL=/internal/cron-jobs uv run python -m scheduler
"""

import json
import os
import sqlite3

from calls import log, serve

db = sqlite3.connect(os.environ.get("APP_DB", "scheduled-tasks.db"), check_same_thread=False)
db.execute("CREATE TABLE IF NOT EXISTS scheduled_tasks"
           " (name TEXT PRIMARY KEY, cron TEXT NOT NULL, task TEXT NOT NULL, tz TEXT, enabled INTEGER NOT NULL)")
db.execute("INSERT OR IGNORE INTO scheduled_tasks VALUES ('nightly-report', '0 3 * * *', 'report', 'Europe/Berlin', 1)")
db.execute("INSERT OR IGNORE INTO scheduled_tasks VALUES ('cache-warm', ?, 'warm', NULL, 1)",
           (os.environ.get("CACHE_WARM_SCHEDULE", "*/5 * * * *"),))
db.commit()


def document() -> bytes:
    """One job per row: the column names map onto the job fields."""
    rows = db.execute("SELECT name, cron, task, tz, enabled FROM scheduled_tasks ORDER BY name").fetchall()
    jobs = [{"name": name, "schedule": cron, "url": f"/tasks/{task}", "enabled": bool(enabled),
             **({"timezone": tz} if tz else {})} for name, cron, task, tz, enabled in rows]
    return json.dumps({"jobs": jobs}).encode()


def run_task(job: str, payload) -> None:
    log("working", job=job, slot=payload["slot"])  # what TASKS[task] did


if __name__ == "__main__":
    serve({("POST", "/tasks/report"): run_task, ("POST", "/tasks/warm"): run_task},
          documents={("GET", "/internal/cron-jobs"): document})
