# The project image: the repository after `make setup` (the library, DVC with its S3 plugin, the
# stage notebooks' kernel), for the jobs that need a checkout rather than a model: tuning workers
# (k8s/job-tune.yaml) and the monitoring CronJob (k8s/cronjob-monitor.yaml). Data and pipeline
# outputs are not in it: the jobs `dvc pull` what they need from the S3 remote. Build from the
# project root (BuildKit reads deploy/project.Dockerfile.dockerignore):
#
#   docker build -f deploy/project.Dockerfile -t churnlab-project .
#
# PyTorch comes from its CPU index (the lock pins torch==2.13.0; PyPI's wheel is the CUDA build).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_INDEX_URL=https://download.pytorch.org/whl/cpu \
    PIP_EXTRA_INDEX_URL=https://pypi.org/simple \
    DVC_NO_ANALYTICS=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    MPLBACKEND=Agg \
    PATH=/project/.venv/bin:$PATH

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /project
COPY . .
RUN make setup \
    && useradd --system --uid 10001 --no-create-home churnlab \
    && chown -R churnlab /project
USER 10001
CMD ["churnlab", "--help"]
