# syntax=docker/dockerfile:1
# The stackmeter image: the `stackmeter` command (sampler, worker, sink) and the
# OpenStack simulator for the demo, run as an unprivileged user.
#
#   docker build -t stackmeter:0.1.0 .
#   docker run --rm stackmeter:0.1.0 --help
#
# docker-compose.yml builds it for every stackmeter service. The build context
# is limited by .dockerignore to what the package needs, so clouds.yaml and
# .env never reach an image layer.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: install the package and its pinned dependencies into a venv ---
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/stackmeter
WORKDIR /src
COPY . .
# requirements.lock, when the checkout has one, pins the transitive
# dependencies exactly as scripts/bootstrap does.
RUN set -eu; \
    constraints=""; \
    if [ -f requirements.lock ]; then constraints="--constraint requirements.lock"; fi; \
    /opt/stackmeter/bin/pip install $constraints ".[simulator]"; \
    /opt/stackmeter/bin/stackmeter --help >/dev/null

# --- runtime: the venv, the default configuration and nothing else ---
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="stackmeter" \
      org.opencontainers.image.description="Meters OpenStack usage per hour for billing" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/stackmeter/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# A fixed uid so volume ownership is predictable; /var/lib/stackmeter/worker
# is created here so a fresh volume mounted on it belongs to that user.
RUN groupadd --system --gid 10001 stackmeter \
    && useradd --system --uid 10001 --gid stackmeter \
        --home-dir /var/lib/stackmeter --shell /usr/sbin/nologin stackmeter \
    && mkdir -p /var/lib/stackmeter/worker /etc/stackmeter \
    && chown -R stackmeter:stackmeter /var/lib/stackmeter

COPY --from=build /opt/stackmeter /opt/stackmeter
# Defaults for `docker run`; docker-compose.yml mounts the checkout's copies
# over them so an edit needs no rebuild.
COPY deploy/stackmeter.yaml /etc/stackmeter/stackmeter.yaml
COPY catalog/ /etc/stackmeter/catalog/

USER stackmeter
WORKDIR /var/lib/stackmeter
# Metrics (metrics.port in deploy/stackmeter.yaml) and the simulator.
EXPOSE 9400 8775

ENTRYPOINT ["stackmeter"]
CMD ["--help"]
