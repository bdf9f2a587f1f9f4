# syntax=docker/dockerfile:1
# One image for every Chat4All role; the role is the command:
#   docker run IMAGE serve api | serve router | serve webhooks | migrate
# Build: docker build -t chat4all .   (BASE_IMAGE: any Debian-based image with Python >= 3.11)
ARG BASE_IMAGE=python:3.12-slim-bookworm

# ---- build: the package and its dependencies in a virtualenv (wheels only, no compiler)
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ONLY_BINARY=:all:
WORKDIR /src
RUN python3 -m venv /opt/chat4all
COPY pyproject.toml README.md ./
COPY src ./src
# pip, setuptools and wheel stay behind: the final stage has no build tooling
RUN /opt/chat4all/bin/pip install --no-compile --no-binary=chat4all . \
    && /opt/chat4all/bin/python -m compileall -q /opt/chat4all/lib \
    && /opt/chat4all/bin/pip uninstall -y pip setuptools wheel

# ---- run: the virtualenv on a slim base, as an unprivileged user
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="chat4all" \
      org.opencontainers.image.description="Chat4All: one HTTP + WebSocket API for in-app messaging and external channels" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 chat4all \
    && useradd --system --uid 10001 --gid chat4all --home-dir /var/lib/chat4all --no-create-home \
       --shell /usr/sbin/nologin chat4all \
    && install -d -o chat4all -g chat4all -m 0750 /var/lib/chat4all
COPY --from=build /opt/chat4all /opt/chat4all
ENV PATH=/opt/chat4all/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CHAT4ALL_HOST=0.0.0.0 \
    CHAT4ALL_PORT=8080 \
    CHAT4ALL_DATA_DIR=/var/lib/chat4all
WORKDIR /var/lib/chat4all
USER 10001:10001
EXPOSE 8080
# every role serves /health/live on CHAT4ALL_PORT (routers and webhook workers too)
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('CHAT4ALL_PORT', '8080'), timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["chat4all"]
CMD ["serve", "api"]
