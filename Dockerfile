# syntax=docker/dockerfile:1
# The sigmavault CLI (and library) in a container: `docker build -t sigmavault .`
#
#   docker run --rm sigmavault --help
#   docker run --rm -v sv-home:/home/sigmavault -e SIGMAVAULT_PASSPHRASE … sigmavault --vault s3://… ls /
#
# Two stages: the builder has the compilers and headers that pyfuse3 needs (the same Debian
# packages scripts/bootstrap installs for the mount; tests/container checks they stay in step)
# and builds a virtualenv at /opt/sigmavault; the runtime stage gets that virtualenv and fuse3
# alone, and runs as the unprivileged user `sigmavault`. Everything local (pins, the cache, device
# secrets, the default vault) lives below SIGMAVAULT_HOME: mount a volume there to keep a
# device's rollback pins across containers. `mount` needs /dev/fuse and CAP_SYS_ADMIN
# (`--device /dev/fuse --cap-add SYS_ADMIN`); nothing else needs privileges.

FROM python:3.11-slim-bookworm AS builder

# fuse3 for mounting; libfuse3-dev and pkg-config to build pyfuse3; gcc to compile it
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        fuse3 libfuse3-dev pkg-config gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/sigmavault \
    && /opt/sigmavault/bin/python -m pip install --no-cache-dir --upgrade pip

# only what the package build reads, so a change to tests or docs does not rebuild the venv
COPY pyproject.toml README.md /src/
COPY sigmavault /src/sigmavault
RUN /opt/sigmavault/bin/python -m pip install --no-cache-dir "/src[fast,cloud,mount,fsspec,http,metrics,disperse]"


FROM python:3.11-slim-bookworm

# fuse3 (with libfuse3, which pyfuse3 links against) is all the mount needs at run time
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fuse3 \
    && rm -rf /var/lib/apt/lists/*

# uid 1000: compose bind-mounts secret files with their host owner and mode, and 1000 is the
# usual first user on a Linux host (build with --build-arg SIGMAVAULT_UID=… to match another)
ARG SIGMAVAULT_UID=1000
RUN groupadd --gid "${SIGMAVAULT_UID}" sigmavault \
    && useradd --uid "${SIGMAVAULT_UID}" --gid sigmavault --create-home --home-dir /home/sigmavault \
        --shell /usr/sbin/nologin sigmavault \
    && install -d -m 0700 -o sigmavault -g sigmavault /home/sigmavault/.sigmavault

COPY --from=builder /opt/sigmavault /opt/sigmavault

ENV PATH=/opt/sigmavault/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SIGMAVAULT_HOME=/home/sigmavault/.sigmavault \
    XDG_DATA_HOME=/home/sigmavault/.sigmavault/data \
    XDG_STATE_HOME=/home/sigmavault/.sigmavault/state \
    XDG_CONFIG_HOME=/home/sigmavault/.sigmavault/config \
    XDG_CACHE_HOME=/home/sigmavault/.sigmavault/cache

USER ${SIGMAVAULT_UID}:${SIGMAVAULT_UID}
WORKDIR /home/sigmavault

# No HEALTHCHECK here: most runs are one-shot commands (create, import, ls) with nothing to probe;
# the long-running `serve http` service in docker-compose.yml has its own.
ENTRYPOINT ["sigmavault"]
CMD ["--help"]
