# The Apptainer that `invoke sif` runs, for hosts without one: Debian trixie with Apptainer from
# sid (apptainer is not in trixie or bookworm). Built FROM the local trixie base image that
# `invoke base-image --suite trixie` makes; sid's archive comes from the base image's own apt
# source (same mirror, suite renamed), whose Release file may be past its Valid-Until date.
FROM local/debian:trixie
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN sed -E 's/^(deb [^ ]+) trixie /\1 sid /' /etc/apt/sources.list > /etc/apt/sources.list.d/sid.list && \
    apt-get -o Acquire::Check-Valid-Until=false update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        apptainer \
        ca-certificates \
        fuse3 \
        squashfs-tools \
        squashfuse \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
ENTRYPOINT []
CMD ["apptainer", "--version"]
