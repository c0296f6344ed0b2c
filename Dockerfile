# clickhouse-sidecar: a small, non-root image configured by environment.
#
#   docker build -t clickhouse-sidecar .
#   docker run -p 50051:50051 -e CLICKHOUSE_URL=http://clickhouse:8123/ clickhouse-sidecar
#
# The embedded engine (chdb, ~150 MB) is left out unless asked for:
#   docker build --build-arg EXTRAS=embedded -t clickhouse-sidecar:embedded .

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml build_proto.py README.md ./
COPY proto ./proto
COPY sidecar ./sidecar
# The build hook generates the gRPC stubs from proto/ inside the wheel.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim
ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SIDECAR_LISTEN=0.0.0.0:50051 \
    SIDECAR_DATA_DIR=/var/lib/clickhouse-sidecar
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --find-links /wheels \
        "$(ls /wheels/clickhouse_sidecar-*.whl)${EXTRAS:+[${EXTRAS}]}" \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin sidecar \
    && mkdir -p /var/lib/clickhouse-sidecar \
    && chown sidecar /var/lib/clickhouse-sidecar
USER 10001
EXPOSE 50051
HEALTHCHECK --interval=10s --timeout=4s --start-period=5s --retries=3 \
    CMD ["clickhouse-sidecar", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["clickhouse-sidecar"]
CMD ["serve"]
