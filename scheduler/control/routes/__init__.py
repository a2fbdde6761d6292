"""The control API's routes by concern, each a function of the API's core (api.py) and the
request: jobs.py (the jobs, a manual fire, pause and resume), ledger.py (a job's runs),
redrive.py (retry and backfill), audit.py (the audit log), sources.py (refresh, accept,
validate) and page.py (the status page). answers.py holds what every route answers with."""
