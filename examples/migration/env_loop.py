"""From an env-driven loop to cron-sidecar: the app that the loop's work moved into.

Before, the app ran its own scheduler thread, driven by its own SCHEDULER_* variables and a
dict of last runs kept in memory (lost at every restart, run on every replica):

    INTERVALS = {"data-refresh": int(os.environ["SCHEDULER_DATA_REFRESH_INTERVAL"])}  # 900
    last_run: dict[str, float] = {}
    while True:
        for name, every in INTERVALS.items():
            if time.time() - last_run.get(name, 0) >= every:
                TASKS[name]()
                last_run[name] = time.time()
        time.sleep(1)

After, each task is an HTTP route, and the sidecar calls it on the schedule of
examples/migration/env_loop.env (SCHEDULER_JOB_DATA_REFRESH_SCHEDULE=every 900s). Run both:

    APP_TOKEN=tok APP_SIGNING_SECRET=whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUE= uv run python examples/migration/env_loop.py &
    uv run python -m scheduler --env-file examples/migration/env_loop.env
"""

from calls import log, serve


def refresh_data(job: str, payload) -> None:
    log("working", job=job, slot=payload["slot"])  # what TASKS["data-refresh"] did


if __name__ == "__main__":
    serve({("POST", "/tasks/data-refresh"): refresh_data})
