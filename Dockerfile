# One image for every DRG-Net service (docker-compose.yml): migrate, webapp, worker, and the Ray nodes.
# CPU build. For GPUs, base it on a CUDA runtime image and install the matching torch wheel first.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DRGNET_DATA_DIR=/data \
    RAY_USAGE_STATS_ENABLED=0

# OpenCV's headless wheel still links against GLib.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY drgnet ./drgnet
COPY db ./db
COPY feedback ./feedback
COPY webapp ./webapp
# `scale` brings Ray for `drgnet screen --ray` and the ray-head / ray-worker services.
RUN pip install '.[scale]'

RUN useradd --create-home --uid 1000 drgnet && mkdir -p /data && chown drgnet /data
USER drgnet
VOLUME ["/data"]
EXPOSE 8501
CMD ["drgnet", "--help"]
