# The tracker in a container. It signs people in with passwords: on the first start it prints a
# one-time link that creates the first admin (or creates ADMIN_EMAILS' first address with the
# password in ADMIN_PASSWORD_FILE). The SQLite file lives in the /data volume, or set
# DATABASE_URL. compose.yaml shows both, with the admin key as a secret.
# The base is pinned to a Python release on Debian 12; pin its digest as well where you build
# (docker buildx imagetools inspect python:3.11.14-slim-bookworm).
FROM python:3.11.14-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DATABASE_URL=sqlite:////data/usage-tracker.db \
    KEY_MAPPINGS_FILE=/data/api_key_mappings.json
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && rm -rf /app/src && useradd --create-home tracker \
    && mkdir /data && chown tracker /data
USER tracker
VOLUME /data
EXPOSE 3000
# Listening on every interface, so sign-in is required: passwords by default. AUTH_MODE=header
# also needs TRUSTED_PROXIES (the signing-in proxy's address or network); the image refuses to
# start without it.
ENV HOST=0.0.0.0 PORT=3000 AUTH_MODE=password
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["usage-tracker", "healthcheck"]
CMD ["usage-tracker", "serve"]
