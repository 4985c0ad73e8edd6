#!/bin/sh
# Print the digest-pinned name of the newest debian:bookworm-slim, for ITAGGER_BASE_IMAGE in
# deploy/.env (or the default in docker-compose.yml). Pinning makes a rebuild reproducible:
# the same base bytes until you choose to move (security updates: re-run, rebuild, upgrade).
#     ./pin-base.sh            ->  debian:bookworm-slim@sha256:...
set -eu
docker pull --quiet debian:bookworm-slim >/dev/null
docker image inspect --format '{{index .RepoDigests 0}}' debian:bookworm-slim
