#!/bin/sh
# Building without Docker Hub: makes the two base images taskbot's Dockerfile and compose.yaml need
# (Python 3.11 on Debian bookworm, and Redis) from a Debian mirror alone, with debootstrap, and
# imports them into the local Docker daemon. Then build and run with them:
#
#   scripts/local-base-images.sh
#   docker build --build-arg BASE=taskbot-base/python:3.11-bookworm -t taskbot:latest .
#   TASKBOT_REDIS_IMAGE=taskbot-base/redis:bookworm docker compose up -d --scale worker=2
#
# Needs root (debootstrap, chroot) and a daemon that answers. Usage:
#   scripts/local-base-images.sh [MIRROR]    # MIRROR defaults to http://deb.debian.org/debian
# Environment: PYTHON_IMAGE, REDIS_IMAGE (the tags), IMAGES ("python redis": which to make), SUITE (bookworm),
# WORKDIR (a scratch dir), CA_DIR (/usr/local/share/ca-certificates: see below).
set -eu

MIRROR=${1:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}
PYTHON_IMAGE=${PYTHON_IMAGE:-taskbot-base/python:3.11-bookworm}
REDIS_IMAGE=${REDIS_IMAGE:-taskbot-base/redis:bookworm}
WORKDIR=${WORKDIR:-$(mktemp -d /tmp/taskbot-base.XXXXXX)}
IMAGES=${IMAGES:-python redis}
CA_DIR=${CA_DIR:-/usr/local/share/ca-certificates}

command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q debootstrap; }
mkdir -p "$WORKDIR/cache"

# One image: debootstrap a minimal bookworm with the given packages, trim it, import it.
# $1 tag, $2 comma-separated packages, $3 the image's CMD, $4... extra `docker import --change`s.
make_image() {
    tag=$1 packages=$2 cmd=$3
    shift 3
    root="$WORKDIR/rootfs-$(echo "$tag" | tr '/:' '--')"
    rm -rf "$root"
    debootstrap --variant=minbase --cache-dir="$WORKDIR/cache" --include="$packages" \
        "$SUITE" "$root" "$MIRROR"
    # What the official slim images drop too: apt's lists and caches, docs, man pages, locales but C.
    chroot "$root" apt-get clean
    # The certificate authorities this machine's admin added (a TLS-inspecting proxy's, a company's): without
    # them `pip install` in the build cannot reach PyPI from behind such a proxy. None added, nothing changes.
    if [ -x "$root/usr/sbin/update-ca-certificates" ] && ls "$CA_DIR"/*.crt >/dev/null 2>&1; then
        cp "$CA_DIR"/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates
    fi
    [ -z "${SETUP:-}" ] || chroot "$root" sh -c "$SETUP"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
        "$root"/usr/share/info/* "$root"/var/cache/debconf/*-old "$root"/var/log/*.log
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'C*' -exec rm -rf {} + 2>/dev/null || true
    tar --numeric-owner -C "$root" -c . | docker import \
        --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV LANG=C.UTF-8" \
        --change "CMD $cmd" "$@" - "$tag"
    rm -rf "$root"
    echo "made $tag"
}

# Like python:3.11-slim-bookworm: `python` and `python3` are 3.11, with venv (and pip inside a venv).
# pip trusts the system's certificate store (with the authorities above), not only its own bundled one.
case " $IMAGES " in *" python "*)
    SETUP= make_image "$PYTHON_IMAGE" python3,python3-venv,python-is-python3,ca-certificates '["python3"]' \
        --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt"
esac

# Like redis:7-alpine for compose.yaml's purposes: redis-server and redis-cli on the PATH, data in /data.
# bookworm's Redis is 7.0 (compose.yaml names the official 7.2; the test suite runs on 7.0 too).
# It runs as the user `redis`, which owns /data (a new named volume takes that owner from the image).
case " $IMAGES " in *" redis "*)
    SETUP="install -d -o redis -g redis /data" make_image "$REDIS_IMAGE" redis-server,redis-tools '["redis-server"]' \
        --change "WORKDIR /data" --change "USER redis" --change "EXPOSE 6379"
esac

rm -rf "$WORKDIR"
docker images "taskbot-base/*"
