# helpdesk-gateway: the same install steps as scripts/run, on Debian 12 with its Python 3.11.
FROM debian:bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ffmpeg espeak-ng kamailio ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --system --create-home --home-dir /opt/helpdesk-gateway --uid 10001 helpdesk
WORKDIR /opt/helpdesk-gateway
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY channels ./channels
COPY ticketing ./ticketing
COPY config ./config
RUN python3 -m venv .venv && .venv/bin/pip install --no-cache-dir . \
 && .venv/bin/helpdesk-gateway prompts build \
 && mkdir -p /var/lib/helpdesk-gateway && chown helpdesk: /var/lib/helpdesk-gateway

ENV PATH=/opt/helpdesk-gateway/.venv/bin:$PATH \
    HELPDESK_GATEWAY__STORAGE__DATA_DIR=/var/lib/helpdesk-gateway \
    HELPDESK_GATEWAY__EMAIL__SMTP__HOST=0.0.0.0 \
    HELPDESK_GATEWAY__WEB__HOST=0.0.0.0 \
    HELPDESK_GATEWAY__VOICE__SIP__HOST=0.0.0.0
USER helpdesk
VOLUME /var/lib/helpdesk-gateway
# SMTP, web (form, desk, API, Twilio webhooks), SIP
EXPOSE 2525 8080 5060/udp 5060/tcp
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD helpdesk-gateway tickets list --limit 1 --json > /dev/null || exit 1
# RTP for SIP calls: voice.sip.rtp_port and up (two ports per call)
EXPOSE 40000-40100/udp
CMD ["sh", "-c", "helpdesk-gateway db upgrade && exec helpdesk-gateway serve"]
