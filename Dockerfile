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

# The project with its descriptors (domains/), contracts (schemas/) and policies. Installed
# in editable mode on purpose: the platform finds domains/ and schemas/ next to its own code
# (the repository root), exactly as in a checkout on a laptop.
COPY . .
RUN pip install -e . \
    && useradd --create-home --uid 10001 mesh \
    && mkdir -p /data \
    && chown mesh /data

USER mesh
VOLUME ["/data"]

CMD ["mesh", "--help"]
