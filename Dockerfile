# schedsim-operator image: build on Debian bookworm, run on bookworm-slim with
# only the shared libraries the binary links.
#
#   docker build -t ghcr.io/llm-d/schedsim-operator:v0.1.0 .
#
# spec/unit/dockerfile_spec.lua keeps this file honest without building it:
# every COPY source exists, both stages are on the Debian release of the
# build host, and the runtime stage installs exactly the packages that hold
# the libraries in the binary's DT_NEEDED list (`dpkg -S`; libc6 comes with
# the base image), whose dependencies provide every other library `ldd` shows.

# ---- build ------------------------------------------------------------------
FROM debian:bookworm AS build
# the build dependencies of .ci/setup, without the test and lint tools
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      liblua5.4-dev libcurl4-openssl-dev libyaml-dev libjansson-dev libmicrohttpd-dev libssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# only what the operator target needs: CMake finds no specs or tools here and
# registers none
COPY CMakeLists.txt ./
COPY cmake/ cmake/
COPY runtime/ runtime/
COPY scripts/ scripts/
# `version` reports this commit (no .git in the context):
#   docker build --build-arg SCHEDSIM_GIT_COMMIT=$(git rev-parse HEAD) .
ARG SCHEDSIM_GIT_COMMIT=unknown
# installs bin/schedsim-operator and the bundled scripts in
# share/schedsim-operator/scripts, where the binary looks for them
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/opt/schedsim \
    -DSCHEDSIM_GIT_COMMIT="${SCHEDSIM_GIT_COMMIT}" \
    && cmake --build /build -j"$(nproc)" --target schedsim-operator \
    && cmake --install /build --strip

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim
# one package per DT_NEEDED library: liblua5.4.so.0, libcurl.so.4,
# libyaml-0.so.2, libjansson.so.4, libmicrohttpd.so.12, libcrypto.so.3
# (libssl3), libz.so.1 (zlib1g); libc.so.6 and libm.so.6 are libc6, already in
# the base image.
# No ca-certificates: the CA comes from the kubeconfig or from the service
# account's ca.crt.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      liblua5.4-0 libcurl4 libyaml-0-2 libjansson4 libmicrohttpd12 libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/schedsim /opt/schedsim
# `run` checks the script set before it starts, fixtures included, and some
# fixtures read their input from ../../../examples/ (relative to the fixture):
# that is share/schedsim-operator/examples once installed. `cmake --install`
# does not install the examples, so they are added here.
COPY examples/ /opt/schedsim/share/schedsim-operator/examples/
# the UID/GID of deploy/manager/deployment.yaml (runAsNonRoot needs a number)
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/opt/schedsim/bin/schedsim-operator"]
CMD ["run"]
