# One image for every callbridge service: `callbridge monitor|api|webhooks|recordings`.
#   docker build -t callbridge .
#   docker run --rm callbridge --help
# The MP3 encoder (LAME, through lameenc) and the WAV decoder (miniaudio) are Python wheels
# with their C code inside, so the image needs no ffmpeg.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CALLBRIDGE_CONFIG=/etc/callbridge/callbridge.ini

WORKDIR /opt/callbridge/src
COPY pyproject.toml constraints.txt README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install -c constraints.txt . \
 && groupadd --system --gid 10001 callbridge \
 && useradd --system --uid 10001 --gid callbridge --home-dir /var/lib/callbridge --shell /usr/sbin/nologin callbridge \
 && install -d -o callbridge -g callbridge -m 0750 /var/lib/callbridge /var/lib/callbridge/recordings /var/lib/callbridge/pbx-recordings \
 && install -d -m 0755 /etc/callbridge \
 && install -m 0644 /dev/null /etc/callbridge/callbridge.ini
COPY callbridge.example.ini /etc/callbridge/callbridge.example.ini

USER callbridge
WORKDIR /var/lib/callbridge
VOLUME ["/var/lib/callbridge"]
# api 8080, monitor 8081, webhooks 8082, recordings 8443 (see callbridge.example.ini)
EXPOSE 8080 8081 8082 8443
ENTRYPOINT ["callbridge"]
CMD ["--help"]
