"""Logs, health, metrics. The probe routes live in observe.routes, which alone reaches the HTTP
server, so importing this face never loads it."""

from .health import Health
from .job_metrics import JobMetrics, OverdueCollector, is_overdue
from .logs import Redactor, setup_logging
from .metrics import Metrics

__all__ = ["Health", "JobMetrics", "Metrics", "OverdueCollector", "Redactor", "is_overdue", "setup_logging"]
