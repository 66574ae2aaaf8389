# taskbot's image: the web app (`taskbot serve`, the default) and the workers (`taskbot worker`) run from it;
# compose.yaml runs both. It installs exactly what requirements.lock pins (every hash checked), then taskbot
# itself without resolving anything again, and runs as an unprivileged user. docs/deployment.md has the rest.

# Python 3.11: the version the lock files are resolved for (`make lock`). BASE is that official image; a machine
# without Docker Hub builds with a local one instead (scripts/local-base-images.sh, docs/deployment.md).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/taskbot
# The dependencies first, in their own layer: a change to taskbot's code does not reinstall them.
COPY requirements.lock /tmp/requirements.lock
RUN /opt/taskbot/bin/pip install --require-hashes -r /tmp/requirements.lock
COPY pyproject.toml README.md LICENSE /src/
COPY bot /src/bot
COPY channels /src/channels
COPY engine /src/engine
RUN /opt/taskbot/bin/pip install --no-deps /src

FROM ${BASE}
# A system user with a fixed uid (volumes keep their owner across rebuilds); its home holds TASKBOT_DATA_DIR.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/taskbot taskbot
COPY --from=build /opt/taskbot /opt/taskbot
ENV PATH=/opt/taskbot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TASKBOT_HTTP_HOST=0.0.0.0 \
    TASKBOT_DATA_DIR=/var/lib/taskbot
USER 10001:10001
WORKDIR /var/lib/taskbot
EXPOSE 8080
CMD ["taskbot", "serve"]
