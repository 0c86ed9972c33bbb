# securekey server image: non-root, data in the /data volume, health-checked on /healthz.
#   docker build -t securekey .
#   docker run -p 5000:5000 -v securekey-data:/data securekey
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[server]" \
 && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin securekey \
 && mkdir -p /data \
 && chown securekey:securekey /data \
 && chmod 700 /data

USER securekey
VOLUME ["/data"]
EXPOSE 5000

# /healthz answers while the process lives; /readyz also checks the database (the proxy uses it).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=2).status == 200 else 1)"]

ENTRYPOINT ["securekey", "server", "--host", "0.0.0.0", "--data-dir", "/data"]
