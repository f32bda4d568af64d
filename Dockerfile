# One image for every service (api, worker, beat, page); the command picks the entry point.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY notifier ./notifier
COPY workers ./workers
COPY config ./config
RUN pip install . && useradd --system --home /app notifier && mkdir -p /app/var && chown notifier /app/var
USER notifier
ENTRYPOINT ["notifier"]
CMD ["--help"]
