# syntax=docker/dockerfile:1
#
# optikpi-connector container image.
#
#   docker build -t optikpi-connector:0.1.0 .
#   docker run --rm -v "$PWD/prod.yaml:/etc/optikpi-connector/config.yaml:ro" optikpi-connector:0.1.0
#
# Stage 1 builds the wheels (the connector and every dependency); stage 2 installs them into a
# slim Python with no compilers and no pip cache, runs as an unprivileged numeric user and starts
# the connector under tini, so PID 1 forwards SIGTERM to the connector and reaps child processes.
# The runtime image holds the base package only: `run`, `check`, `send`, `dlq`, `produce-sample`
# and `sandbox` need nothing more (`demo` needs the `[demo]` extra and is not meant for images).

# ---------------------------------------------------------------------------------------------
FROM python:3.11.13-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel is built from (see .dockerignore): the tests, docs and chart stay out.
COPY pyproject.toml README.md ./
COPY connector ./connector
# Every dependency ships binary wheels for linux/amd64 and linux/arm64 (confluent-kafka bundles
# librdkafka), so the builder needs no compiler either.
RUN pip wheel --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
FROM python:3.11.13-slim-bookworm AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="optikpi-connector" \
      org.opencontainers.image.description="Kafka connector that feeds Avro event streams into the OptiKPI Data Pipeline Ingest API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.13-slim-bookworm"

# TMPDIR: transform worker processes need a writable temporary directory; under a read-only
# root filesystem /tmp is the one writable mount (an emptyDir in the Helm chart, a tmpfs in
# docker-compose.yml).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    TMPDIR=/tmp

# tini as PID 1: forwards SIGTERM/SIGINT to the connector (which then drains and commits) and
# reaps exited child processes. Pinned to bookworm's 0.19.0-1 (the binNMU suffix differs by
# architecture, hence the wildcard).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1* \
    && rm -rf /var/lib/apt/lists/*

# The wheels come from the builder through a bind mount, so they never become a layer. The
# connector's wheel is installed by path, its dependencies only from the builder's wheels
# (--no-index): the versions resolved in the builder are the versions in the image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/optikpi_connector-*.whl \
    && optikpi-connector --version

RUN groupadd --system --gid 10001 optikpi \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin optikpi \
    && mkdir -p /etc/optikpi-connector

# Bare schema names in the configuration are looked up next to the configuration file, then in
# ./schemas (relative to this directory), then among the examples bundled with the package.
WORKDIR /opt/optikpi-connector
USER 10001:10001

# /healthz, /readyz and /metrics: the configuration's `server.port` (default 8080).
EXPOSE 8080

ENTRYPOINT ["/usr/bin/tini", "--", "optikpi-connector"]
CMD ["run", "--config", "/etc/optikpi-connector/config.yaml"]
