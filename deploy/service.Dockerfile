# syntax=docker/dockerfile:1
# The image of either Python service; the build arguments say which:
#   docker build -f deploy/service.Dockerfile --build-arg SERVICE=service_a --build-arg PORT=8002 -t shop/service_a .
#   docker build -f deploy/service.Dockerfile --build-arg SERVICE=service_b --build-arg PORT=8001 -t shop/service_b .
# Build context: the repository root, for requirements.txt and the shared
# package shopkit/; deploy/service.Dockerfile.dockerignore says what is sent.

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONPATH=/opt/service
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /var/lib/service app \
    && mkdir -p /var/lib/service \
    && chown app:app /var/lib/service
# The pinned dependencies (one layer for both services), then the shared
# package, then the service's own code.
WORKDIR /opt
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY shopkit /opt/shopkit
RUN pip install --no-cache-dir --no-deps /opt/shopkit
# SERVICE: the service's folder (service_a or service_b); PORT: the port it
# serves on. Declared here, after the dependencies, so that both services
# share the layers above (a build argument's value is part of the cache key
# of every RUN after its declaration).
ARG SERVICE
ARG PORT
WORKDIR /opt/service
COPY ${SERVICE}/app ./app
# The code stays root-owned and read-only; the working directory is the
# service user's own, for anything the service writes.
WORKDIR /var/lib/service
USER 10001:10001
# Without a DATABASE_URL (docker run) the service keeps an SQLite file in its
# working directory; docker-compose.yml points it at PostgreSQL instead. The
# service migrates its schema to the head revision when it starts.
ENV HOST=0.0.0.0 \
    PORT=${PORT} \
    DATABASE_URL=/var/lib/service/${SERVICE}.db
EXPOSE ${PORT}
CMD ["python", "-m", "app"]
