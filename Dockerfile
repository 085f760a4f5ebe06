# A small image of the tracker. Mount a volume at /data for the SQLite file, or set DATABASE_URL.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DATABASE_URL=sqlite:////data/usage-tracker.db \
    KEY_MAPPINGS_FILE=/data/api_key_mappings.json
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && useradd --create-home tracker && mkdir /data && chown tracker /data
USER tracker
VOLUME /data
EXPOSE 3000
# Listening beyond loopback requires sign-in: AUTH_MODE=password, oidc, or header behind a proxy.
ENV HOST=0.0.0.0 AUTH_MODE=header
CMD ["usage-tracker", "serve"]
