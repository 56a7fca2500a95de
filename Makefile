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

.PHONY: all build install test vet deps bench demo clean fmt

all: build

# Builds from a clone carry their version and commit (dsftp --version):
# GOFLAGS=-buildvcs=false or a tarball leave the build info without them.
# The version is the latest tag (git describe), else a Go pseudo-version.
VERSION ?= $(shell git describe --tags --dirty 2>/dev/null || TZ=UTC git log -1 --date=format-local:%Y%m%d%H%M%S --format=v0.0.0-%cd-%h --abbrev=12 2>/dev/null)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo +dirty)
LDFLAGS := -X github.com/dsftp/dsftp/cmd/internal/lifecycle.version=$(VERSION) -X github.com/dsftp/dsftp/cmd/internal/lifecycle.commit=$(COMMIT)

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/dsftp

# install: the binary, its man pages and bash, zsh and fish completion,
# all generated from the command definitions. PREFIX=~/.local for a user.
PREFIX  ?= /usr/local
DESTDIR ?=
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/dsftp
	$(BIN) man $(DESTDIR)$(PREFIX)/share/man/man1
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	$(BIN) completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/dsftp
	$(BIN) completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_dsftp
	$(BIN) completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/dsftp.fish

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

# A one-command demo: two sharers and a mount at ./peers-demo, on
# this machine only (LAN discovery on loopback). Ctrl-C stops it.
demo: build
	DSFTP_BIN=$(abspath $(BIN)) testdata/demo/demo.sh

fmt:
	gofmt -w cmd fs peers share testdata

clean:
	rm -rf bin
