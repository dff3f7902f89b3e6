# A slim, non-root image: runs the migrations, then serves the API on :8000.
# DATABASE_URL selects PostgreSQL in production; without it a SQLite file lives in /data.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install '.[postgres]'

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DISPATCH_DATA_DIR=/data \
    DISPATCH_ENVIRONMENT=production
RUN useradd --system --uid 10001 --home-dir /app dispatch \
    && mkdir -p /app /data && chown dispatch /data
COPY --from=build /install /usr/local
WORKDIR /app
USER dispatch
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
# `dispatch serve` migrates first (the scripts are inside the package), then starts uvicorn.
CMD ["dispatch", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
