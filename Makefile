# dsftp: build, test, benchmark, demo.
#
# `make test` is the one command that proves the tree: it installs the
# system tools the tests drive (when run as root on Debian/Ubuntu), then runs
# go vet and the race-enabled test suite. With CI=true a missing tool or
# privilege fails the run instead of skipping tests.

GO      ?= go
BIN     ?= bin/dsftp
PKGS    ?= ./... ./testdata/testenv ./testdata/wanproxy ./testdata/discordfake ./testdata/discordfake/cmd/fakediscord ./testdata/bench ./testdata/portmaptest
TESTFLAGS ?= -race -count=1 -timeout 30m

# Debian packages the tests drive: real OpenSSH client and server, sshfs,
# FUSE 3, a real UPnP router (miniupnpd + nftables + miniupnpc), network
# namespaces (iproute2) and a terminal multiplexer for the shell tests.
APT_PKGS := openssh-client openssh-server sshfs fuse3 miniupnpd nftables miniupnpc iproute2 tmux procps psmisc
# One binary per package above, to decide whether apt has anything to do.
NEED_BINS := ssh sftp /usr/sbin/sshd sshfs fusermount3 /usr/sbin/miniupnpd nft upnpc ip tmux pgrep fuser

.PHONY: all build test vet deps bench bench-wan demo clean fmt

all: build

build:
	$(GO) build -o $(BIN) ./cmd/dsftp

deps:
	@missing=""; for b in $(NEED_BINS); do command -v $$b >/dev/null 2>&1 || [ -x "$$b" ] || missing="$$missing $$b"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "deps: installing$$missing via apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PKGS) >/dev/null || exit 1; \
	else \
		echo "deps: missing$$missing; install as root: apt-get install $(APT_PKGS)"; \
		if [ "$$CI" = true ]; then exit 1; fi; \
	fi

vet:
	$(GO) vet $(PKGS)
	@unformatted=$$(gofmt -l cmd fs peers share testdata); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

test: deps vet
	$(GO) test $(TESTFLAGS) $(PKGS)

# bench: dsftp mount vs sshfs (default and AES-GCM) on OpenSSH sshd and on
# dsftp share, over loopback; prints a markdown table. Needs root, FUSE,
# sshd, sshfs and ~1.5 GiB in /var/tmp; takes several minutes. Built
# without -race. BENCHFLAGS="-runs 7 -v" etc. pass options through.
BENCHFLAGS ?=
bench: build
	$(GO) run ./testdata/bench -dsftp $(BIN) $(BENCHFLAGS)

# bench-wan: the same servers through testdata/wanproxy (one-way delay of
# half the RTT, a rate limit each way), small-file and listing workloads,
# dsftp vs sshfs. A few minutes. Other settings: WAN="-wan 50ms,10mbit".
WAN ?= -wan 30ms,100mbit -wan 80ms,20mbit
bench-wan: build
	$(GO) run ./testdata/bench -dsftp $(BIN) $(WAN) $(BENCHFLAGS)

# A one-command demo: two sharers and a mount at ./peers-demo, on
# this machine only (LAN discovery on loopback). Ctrl-C stops it.
demo: build
	DSFTP_BIN=$(abspath $(BIN)) testdata/demo/demo.sh

fmt:
	gofmt -w cmd fs peers share testdata

clean:
	rm -rf bin
