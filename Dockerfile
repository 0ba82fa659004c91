# One image for every mesh-stream service in docker-compose.yml: the `mesh` CLI (registry,
# setup), the domain simulators and the faust processors. Kafka itself runs from the official
# apache/kafka image. Every dependency ships a manylinux wheel, so no compiler is needed.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MESH_DATA_DIR=/data

WORKDIR /app

# The sample mesh is a project like any domain team's: /app holds its mesh.yaml, descriptors
# (domains/), contracts (schemas/) and policies, and commands find it from the working
# directory (or MESH_PROJECT_ROOT). The wheel is mesh_stream only, with every extra (registry,
# processing, broker), at the versions of the lock CI tests (used as constraints, so the dev
# tools in it are not installed).
ENV MESH_PROJECT_ROOT=/app
COPY . .
RUN pip install -c requirements/dev.lock '.[all]' \
    && useradd --create-home --uid 10001 mesh \
    && mkdir -p /data \
    && chown mesh /data

USER mesh
VOLUME ["/data"]

CMD ["mesh", "--help"]
