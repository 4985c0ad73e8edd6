#!/bin/bash
# The proxy: renders deploy/nginx/itagger.conf.template for ITAGGER_SERVER_NAME, picks the
# certificate, starts nginx and reloads it when the certificate changes (renewal).
#
# Certificate, first found wins (checked again every minute):
#   /etc/letsencrypt/live/$ITAGGER_SERVER_NAME/   written by the acme service (profile "acme")
#   /etc/nginx/certs/                             fullchain.pem + privkey.pem from ITAGGER_CERTS_DIR
#   a temporary self-signed certificate           so that port 80 can answer the ACME challenge
#                                                 before the first certificate exists
set -euo pipefail
: "${ITAGGER_SERVER_NAME:?set ITAGGER_SERVER_NAME in deploy/.env}"
https_port="${ITAGGER_HTTPS_PORT:-443}"
if [ "$https_port" = "443" ]; then
  export ITAGGER_HTTPS_PORT_SUFFIX=""
else
  export ITAGGER_HTTPS_PORT_SUFFIX=":$https_port"
fi
export ITAGGER_SERVER_NAME

run=/tmp/nginx
mkdir -p "$run"/conf.d "$run"/tls "$run"/selfsigned "$run"/client_body "$run"/proxy

cert_source() {
  local le="/etc/letsencrypt/live/$ITAGGER_SERVER_NAME"
  if [ -r "$le/fullchain.pem" ] && [ -r "$le/privkey.pem" ]; then
    echo "$le"
  elif [ -r /etc/nginx/certs/fullchain.pem ] && [ -r /etc/nginx/certs/privkey.pem ]; then
    echo /etc/nginx/certs
  else
    if [ ! -s "$run/selfsigned/fullchain.pem" ]; then
      openssl req -x509 -newkey rsa:2048 -sha256 -days 2 -nodes -subj "/CN=$ITAGGER_SERVER_NAME" \
        -keyout "$run/selfsigned/privkey.pem" -out "$run/selfsigned/fullchain.pem" 2>/dev/null
    fi
    echo "$run/selfsigned"
  fi
}

fingerprint() { cat "$1/fullchain.pem" "$1/privkey.pem" 2>/dev/null | md5sum; }

install_cert() {
  cp "$1/fullchain.pem" "$run/tls/fullchain.pem.new"
  cp "$1/privkey.pem" "$run/tls/privkey.pem.new"
  chmod 600 "$run/tls/privkey.pem.new"
  mv "$run/tls/fullchain.pem.new" "$run/tls/fullchain.pem"
  mv "$run/tls/privkey.pem.new" "$run/tls/privkey.pem"
}

source_dir=$(cert_source)
[ "$source_dir" = "$run/selfsigned" ] && \
  echo "proxy: no certificate in /etc/letsencrypt/live/$ITAGGER_SERVER_NAME or /etc/nginx/certs;" \
       "serving a temporary self-signed one (see docs/deploy.md, TLS)" >&2
install_cert "$source_dir"
envsubst '${ITAGGER_SERVER_NAME} ${ITAGGER_HTTPS_PORT_SUFFIX}' \
  < /etc/nginx/templates/itagger.conf.template > "$run/conf.d/itagger.conf"
nginx -t -q

watch_certificate() {
  local current; current="$source_dir $(fingerprint "$source_dir")"
  while sleep "${ITAGGER_CERT_CHECK_SECONDS:-60}"; do
    local dir; dir=$(cert_source)
    local now; now="$dir $(fingerprint "$dir")"
    if [ "$now" != "$current" ]; then
      install_cert "$dir" && nginx -s reload && echo "proxy: certificate from $dir loaded" >&2
      current="$now"
    fi
  done
}
watch_certificate &
exec nginx -g 'daemon off;'
