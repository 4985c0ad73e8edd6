#!/bin/sh
# Print a deploy/.env for this machine: .env.example with every secret filled in at random and
# ITAGGER_DOCKER_GID set to the group of the docker socket.
#     ./new-env.sh > .env && chmod 600 .env
# Then set ITAGGER_SERVER_NAME (and the ports, certificates, VLM keys) in .env.
set -eu
here=$(dirname "$0")
socket=${ITAGGER_DOCKER_SOCKET:-/var/run/docker.sock}
gid=$(stat -c %g "$socket" 2>/dev/null || echo "")
[ -n "$gid" ] || echo "new-env.sh: no docker socket at $socket; set ITAGGER_DOCKER_GID by hand" >&2
rand() { openssl rand -hex 32; }
while IFS= read -r line; do
  case "$line" in
    JUPYTERHUB_COOKIE_SECRET=|JUPYTERHUB_CRYPT_KEY=|CONFIGPROXY_AUTH_TOKEN=|ADMIN_PASSWORD=|POSTGRES_PASSWORD=|ITAGGER_ROLE_PASSWORD_KEY=)
      echo "${line}$(rand)" ;;
    ITAGGER_DOCKER_GID=) echo "ITAGGER_DOCKER_GID=$gid" ;;
    ITAGGER_DOCKER_SOCKET=*) echo "ITAGGER_DOCKER_SOCKET=$socket" ;;
    *) echo "$line" ;;
  esac
done < "$here/.env.example"
