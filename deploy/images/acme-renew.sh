#!/bin/bash
# Obtains the certificate for ITAGGER_SERVER_NAME with the ACME HTTP-01 challenge through the
# proxy's webroot (/var/www/acme, served on port 80 at /.well-known/acme-challenge/), then
# renews it twice a day; the proxy notices the new files and reloads nginx by itself.
set -euo pipefail
: "${ITAGGER_SERVER_NAME:?set ITAGGER_SERVER_NAME in deploy/.env}"
: "${ITAGGER_ACME_EMAIL:?set ITAGGER_ACME_EMAIL in deploy/.env to use the acme profile}"
server="${ITAGGER_ACME_SERVER:-https://acme-v02.api.letsencrypt.org/directory}"
dirs=(--config-dir /etc/letsencrypt --work-dir /var/lib/letsencrypt --logs-dir /var/log/letsencrypt)

if [ ! -r "/etc/letsencrypt/live/$ITAGGER_SERVER_NAME/fullchain.pem" ]; then
  certbot certonly "${dirs[@]}" --non-interactive --agree-tos --email "$ITAGGER_ACME_EMAIL" \
    --server "$server" --webroot --webroot-path /var/www/acme \
    --cert-name "$ITAGGER_SERVER_NAME" --domain "$ITAGGER_SERVER_NAME"
fi
[ "${1:-}" = "--once" ] && exit 0
while true; do
  sleep "${ITAGGER_ACME_RENEW_SECONDS:-43200}"
  certbot renew "${dirs[@]}" --non-interactive --webroot --webroot-path /var/www/acme \
    || echo "acme: renewal failed; retrying in ${ITAGGER_ACME_RENEW_SECONDS:-43200} s" >&2
done
