# syntax=docker/dockerfile:1
#
# cron-sidecar image: a venv built with uv from the locked dependencies, run as a non-root
# user on a plain python:3.11-slim.
#
#   docker build -t cron-sidecar \
#     --build-arg VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' scheduler/__init__.py)" \
#     --build-arg SOURCE=<repository URL> .
#   docker run --rm -e SCHEDULER_JOB_HELLO_SCHEDULE="every 10s" \
#     -e SCHEDULER_JOB_HELLO_URL=http://app:8000/hello cron-sidecar
#
# No secret is baked in: pass SCHEDULER_API_TOKEN, SCHEDULER_SIGNING_SECRET and
# SCHEDULER_REDIS_URL at run time, preferably as files with the *_FILE variables.
# tests/test_container.py runs each step of this file outside Docker.

# ---- builder: install exactly what uv.lock pins; fail if it is out of date ---------------
FROM python:3.11-slim AS builder

ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

# The venv lives where the runtime stage expects it, built on the interpreter the runtime
# image has at the same path; uv never downloads a Python of its own.
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

WORKDIR /src

# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --extra fast --no-install-project --no-editable

# Then the project itself, as a regular (non-editable) install: /src is not needed later.
COPY README.md LICENSE ./
COPY scheduler ./scheduler
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --extra fast --no-editable

# ---- runtime --------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

# OCI labels. VERSION has no default so the version stays written in scheduler/__init__.py
# only, and SOURCE none so the image names no host it was not told of.
ARG VERSION
ARG SOURCE
LABEL org.opencontainers.image.title="cron-sidecar" \
      org.opencontainers.image.description="A cron clock sidecar: leader-elected, fires each due job as one signed, idempotent HTTP call" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="${SOURCE}"

# A fixed, unprivileged uid/gid (Kubernetes runAsNonRoot can check a numeric USER), and
# the standalone state directory owned by it.
ARG APP_UID=10001
ARG APP_GID=10001
RUN groupadd --system --gid "${APP_GID}" cron-sidecar \
 && useradd --system --uid "${APP_UID}" --gid "${APP_GID}" --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin cron-sidecar \
 && install -d -o "${APP_UID}" -g "${APP_GID}" -m 0750 /var/lib/cron-sidecar

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SCHEDULER_STATE_FILE=/var/lib/cron-sidecar/scheduler-state.db

# Also the directory ./.env would be read from: mount a dotenv file here if you use one.
WORKDIR /var/lib/cron-sidecar
USER 10001:10001

# /metrics, /healthz, /readyz (SCHEDULER_HTTP_PORT).
EXPOSE 9464

# SIGTERM: stop claiming, finish fires in flight for up to SCHEDULER_SHUTDOWN_GRACE
# (default 30s), release the lease. Give the container more than that to stop
# (docker stop -t, compose stop_grace_period, terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM

# /healthz answers while the event loop is alive; the command reads the same environment
# as the daemon, so it asks the right port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "scheduler", "healthcheck"]

ENTRYPOINT ["python", "-m", "scheduler"]
CMD ["run"]
