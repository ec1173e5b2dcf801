# helpdesk-gateway: built from the wheel, run as a non-root user on a read-only root filesystem.
#   docker build -t helpdesk-gateway .   ·   docker compose up   (compose.yaml: PostgreSQL, ports, volumes)

# -- 1. the wheel: exactly what `pip install .` ships (templates, static files, migrations, config/ data) --------
FROM debian:bookworm-slim AS wheel
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY channels ./channels
COPY ticketing ./ticketing
COPY config ./config
RUN python3 -m venv /tmp/build && /tmp/build/bin/pip wheel --no-cache-dir --no-deps -w /wheels .

# -- 2. the image: that wheel installed into a venv, prompts and speech models baked in ---------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ffmpeg espeak-ng kamailio ca-certificates curl postgresql-client \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --home-dir /var/lib/helpdesk-gateway --no-create-home --uid 10001 helpdesk \
 && mkdir -p /var/lib/helpdesk-gateway && chown helpdesk: /var/lib/helpdesk-gateway
COPY --from=wheel /wheels /wheels
ENV PATH=/opt/helpdesk-gateway/.venv/bin:$PATH \
    HELPDESK_GATEWAY__STORAGE__DATA_DIR=/var/lib/helpdesk-gateway \
    HELPDESK_GATEWAY__VOICE__STT__MODELS_DIR=/opt/helpdesk-gateway/models \
    HELPDESK_GATEWAY__EMAIL__SMTP__HOST=0.0.0.0 \
    HELPDESK_GATEWAY__WEB__HOST=0.0.0.0 \
    HELPDESK_GATEWAY__VOICE__SIP__HOST=0.0.0.0
# The prompts go beside the installed config/ data (the venv's share/helpdesk-gateway/config/prompts), the speech
# models into the image, not the data volume: the root filesystem is read-only at run time.
RUN python3 -m venv /opt/helpdesk-gateway/.venv \
 && /opt/helpdesk-gateway/.venv/bin/pip install --no-cache-dir /wheels/helpdesk_gateway-*.whl \
 && rm -rf /wheels \
 && cd /tmp && helpdesk-gateway prompts build \
 && helpdesk-gateway models install --defaults
USER helpdesk
WORKDIR /var/lib/helpdesk-gateway
VOLUME /var/lib/helpdesk-gateway
# SMTP, web (form, desk, API, /healthz /readyz /metrics, Twilio webhooks), SIP
EXPOSE 2525 8080 5060/udp 5060/tcp
# RTP for SIP calls: voice.sip.rtp_port and up (two ports per call)
EXPOSE 40000-40100/udp
# Ready: the database answers and every enabled channel listens (503 with what is not, otherwise).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/readyz > /dev/null || exit 1
# SIGTERM stops it gracefully (README: Stopping).
STOPSIGNAL SIGTERM
CMD ["sh", "-c", "helpdesk-gateway db upgrade && exec helpdesk-gateway serve"]
