# The package's test suite in a real container. /dev/shm is whatever
# `docker run --shm-size` gives (64 MiB by default); the suite uses the real
# one for its full-/dev/shm test when it is small.
#
#   docker build -t shm-test .
#   docker run --rm shm-test                    # 64 MiB /dev/shm
#   docker run --rm --shm-size=1m shm-test      # 1 MiB /dev/shm
FROM golang:1.26-bookworm
WORKDIR /src/shm
COPY . .
# Compile the test binaries at build time so that running needs no network
# and no cache beyond the image's.
RUN go vet ./... && go test -race -count=1 -run '^$' ./...
# -p 1: the packages' tests share the container's small /dev/shm, and one of
# them fills it on purpose.
CMD ["go", "test", "-race", "-count=1", "-p", "1", "./..."]
