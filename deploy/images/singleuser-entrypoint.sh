#!/bin/bash
# A user's server: copies the workbench notebooks of this release into the home volume when
# the user has no file of that name yet (never over the user's own copy), then starts the
# command (jupyterhub-singleuser, or dask / itagger for the other services on this image).
set -euo pipefail
if [ -w "$HOME" ]; then
  for nb in /opt/itagger/notebooks/*.ipynb; do
    [ -e "$HOME/$(basename "$nb")" ] || cp "$nb" "$HOME/"
  done
fi
exec "$@"
