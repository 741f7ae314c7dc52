# Periscope's image: the one binary (collector, relay, demo, observe, policy).
# Build: docker build -t periscope:dev .   (docker-compose.yaml builds it too)
#
# The image runs as an unprivileged user: enough for the relay, observe and
# policy. The collector (and the demo) load eBPF programs: run them as root
# with only the capabilities README.md lists (CAP_BPF, CAP_NET_ADMIN,
# CAP_PERFMON; CAP_SYS_ADMIN to mount bpffs or, for the demo, to create
# network namespaces), as docker-compose.yaml does.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The eBPF objects are committed (bpf2go): no clang needed here.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=${VERSION}" -o /out/periscope ./cmd/periscope

FROM debian:bookworm-slim
# iproute2: the demo runs its pods' traffic with `ip netns exec`.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends ca-certificates iproute2 \
	&& rm -rf /var/lib/apt/lists/* \
	&& useradd --system --uid 65532 --no-create-home --shell /usr/sbin/nologin periscope
COPY --from=build /out/periscope /usr/local/bin/periscope
USER periscope
ENTRYPOINT ["periscope"]
CMD ["--help"]
