# syntax=docker/dockerfile:1

# --- builder: wheels for the project and every dependency -----------------------------------------
FROM python:3.11-slim AS builder
# A C compiler for the matching core, which setup.py compiles with mypyc; the runtime image needs none.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY exchange ./exchange
COPY ledger ./ledger
COPY api ./api
COPY migrations ./migrations
COPY benchmarks ./benchmarks
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- runtime: slim, no compilers, unprivileged ----------------------------------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EXCHANGE_DATA_DIR=/var/lib/exchange \
    EXCHANGE_PORT=8000
RUN useradd --system --create-home --home-dir /home/exchange --shell /usr/sbin/nologin exchange \
    && mkdir -p /var/lib/exchange \
    && chown exchange:exchange /var/lib/exchange
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels impact-exchange
USER exchange
WORKDIR /home/exchange
VOLUME ["/var/lib/exchange"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('EXCHANGE_PORT', '8000') + '/readyz', timeout=2)"]
CMD ["exchange", "serve", "--host", "0.0.0.0"]
