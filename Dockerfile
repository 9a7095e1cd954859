# dlroadmap model server: `dlr serve` (FastAPI + uvicorn, ONNX Runtime or torch CPU) as a non-root
# container. Mount a folder written by `dlr export` at /models.
#
#   docker build -t dlroadmap-serve .
#   docker run --rm -p 127.0.0.1:8000:8000 -v "$PWD/runs/models:/models:ro" dlroadmap-serve
#
# With plain Docker the public base image and the PyTorch CPU index are used. `make image` builds
# the same file with podman where no registry is reachable: a debootstrapped Debian bookworm base
# (docker/base-image.sh) and a wheelhouse downloaded on the host (BASE_IMAGE and PIP_EXTRA below).

ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment with the serving dependencies and dlroadmap ---------------------
FROM ${BASE_IMAGE} AS build
# The CPU build of torch (the default PyPI torch is the multi-GB CUDA build).
ARG PIP_EXTRA="--extra-index-url https://download.pytorch.org/whl/cpu"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY docker/wheelhouse/ /wheelhouse/
COPY docker/requirements-serve.txt pyproject.toml README.md ./
COPY src ./src
RUN python3 -m venv /opt/dlr \
 && /opt/dlr/bin/pip install --find-links /wheelhouse ${PIP_EXTRA} -r requirements-serve.txt \
 && /opt/dlr/bin/pip install --find-links /wheelhouse ${PIP_EXTRA} --no-deps . \
 && /opt/dlr/bin/dlr --version

# --- runtime: the environment only, run as an unprivileged user ----------------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="dlroadmap-serve" \
      org.opencontainers.image.description="dlroadmap model server: TF Serving REST + KServe v2 over ONNX Runtime" \
      org.opencontainers.image.licenses="MIT"
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin dlr \
 && mkdir -p /models /mlflow && chown dlr:dlr /mlflow
COPY --from=build /opt/dlr /opt/dlr
ENV PATH=/opt/dlr/bin:$PATH PYTHONUNBUFFERED=1 DLR_PROGRESS=0 OMP_NUM_THREADS=2
USER dlr
WORKDIR /home/dlr
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)" || exit 1
# 0.0.0.0 inside the container; publish it on the host's loopback (-p 127.0.0.1:8000:8000) or set DLR_API_KEY.
ENTRYPOINT ["dlr", "serve"]
CMD ["/models", "--host", "0.0.0.0", "--port", "8000"]
