# dsftp: build, test, benchmark, demo.
#
# `make test` is the one command that proves the tree: it installs the
# system tools the tests drive (when run as root on Debian/Ubuntu), then runs
# go vet and the race-enabled test suite. With CI=true a missing tool or
# privilege fails the run instead of skipping tests.

GO      ?= go
BIN     ?= bin/dsftp
PKGS    ?= ./... ./testdata/testenv ./testdata/wanproxy ./testdata/discordfake ./testdata/discordfake/cmd/fakediscord ./testdata/bench ./testdata/portmaptest ./testdata/testenv/cmd/plaintcp ./testdata/testenv/cmd/punchtest
TESTFLAGS ?= -race -count=1 -timeout 30m

# Debian packages the tests drive: real OpenSSH client and server, sshfs,
# FUSE 3, a real UPnP router (miniupnpd + nftables + miniupnpc), network
# namespaces (iproute2), a terminal multiplexer for the shell tests, a
# packet capture (tcpdump: the relay carries no plaintext), rsync (the
# everyday copies over a mount exit 0), the shells whose completion is
# tested (zsh, fish, bash with the bash-completion package) and coturn
# (turnserver: the STUN server on the hole-punching lab's internet).
APT_PKGS := openssh-client openssh-server openssl sshfs fuse3 miniupnpd nftables miniupnpc iproute2 tmux procps psmisc tcpdump rsync zsh fish bash-completion coturn
# One binary (or file) per package above, to decide whether apt has
# anything to do.
NEED_BINS := ssh sftp openssl /usr/sbin/sshd sshfs fusermount3 /usr/sbin/miniupnpd nft upnpc ip tmux pgrep fuser tcpdump rsync zsh fish /usr/share/bash-completion/bash_completion turnserver

# The platforms of a release, GOOS/GOARCH. `make test` vets every package
# for each of them (so a platform break fails CI); `make release` builds
# them into dist/.
PLATFORMS := linux/amd64 linux/arm64 linux/arm darwin/amd64 darwin/arm64 windows/amd64 freebsd/amd64
# 32-bit ARM as Raspberry Pi OS runs it (ARMv6 also covers the Pi Zero).
GOARM   ?= 6

# Builds from a clone carry their version and commit (dsftp --version):
# GOFLAGS=-buildvcs=false or a tarball leave the build info without them.
# The version is the latest tag (git describe), else a Go pseudo-version.
VERSION ?= $(shell git describe --tags --dirty 2>/dev/null || TZ=UTC git log -1 --date=format-local:%Y%m%d%H%M%S --format=v0.0.0-%cd-%h --abbrev=12 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo +dirty)
LDFLAGS := -X github.com/dsftp/dsftp/cmd/internal/lifecycle.version=$(VERSION) -X github.com/dsftp/dsftp/cmd/internal/lifecycle.commit=$(COMMIT)

# go-fuse 2.12.1's splice code does not compile where splice(2) returns an
# int (32-bit platforms: GOARCH arm, 386). Those builds use a copy of
# go-fuse with that one type fixed, through a separate module file, so
# go.mod stays as it is for everyone else. See README, Platforms.
GOFUSE32 := bin/gofuse32

.PHONY: all build install test test-short vet cross release gofuse32 deps bench bench-wan bench-quic demo clean fmt

all: build

# On a 32-bit host (a Pi), build against the patched go-fuse (see GOFUSE32).
HOST32  := $(filter arm 386,$(shell $(GO) env GOARCH))

build: $(if $(HOST32),gofuse32)
	$(GO) build $(if $(HOST32),-modfile=$(GOFUSE32)/go.mod) -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/dsftp

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
	@missing=""; for b in $(NEED_BINS); do command -v $$b >/dev/null 2>&1 || [ -e "$$b" ] || missing="$$missing $$b"; done; \
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

test: deps vet cross
	$(GO) test $(TESTFLAGS) $(PKGS)

# test-short: the fast tier, in-process tests only (about a minute);
# every test that starts a program, mounts or uses namespaces skips.
test-short:
	$(GO) test -short -count=1 $(PKGS)

# cross: go vet of every package (tests included) for each platform.
cross: gofuse32
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; mod=; \
		case $$arch in arm|386) mod=-modfile=$(GOFUSE32)/go.mod;; esac; \
		echo "cross: go vet for $$p"; \
		GOOS=$$os GOARCH=$$arch GOARM=$(GOARM) $(GO) vet $$mod ./...; \
	done

# release: dsftp for every platform in dist/, stamped with VERSION, and
# SHA256SUMS.
release: gofuse32
	@set -e; rm -rf dist; mkdir -p dist; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; mod=; ext=; \
		case $$arch in arm|386) mod=-modfile=$(GOFUSE32)/go.mod;; esac; \
		[ $$os = windows ] && ext=.exe; \
		out=dist/dsftp-$(VERSION)-$$os-$$arch$$ext; \
		echo "release: $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$(GOARM) $(GO) build $$mod -trimpath \
			-ldflags "-s -w $(LDFLAGS)" -o $$out ./cmd/dsftp; \
	done; cd dist && sha256sum dsftp-* > SHA256SUMS && cat SHA256SUMS

# gofuse32: the patched go-fuse copy and module file for 32-bit builds.
gofuse32: $(GOFUSE32)/go.mod
$(GOFUSE32)/go.mod: go.mod go.sum
	@rm -rf $(GOFUSE32); mkdir -p $(GOFUSE32)
	@src=$$($(GO) list -m -f '{{.Dir}}' github.com/hanwen/go-fuse/v2) && test -n "$$src" && \
		cp -r "$$src" $(GOFUSE32)/go-fuse && chmod -R u+w $(GOFUSE32)/go-fuse && \
		sed -i -e 's/var sn int64/var sn int/' -e 's/var sm int64/var sm int/' $(GOFUSE32)/go-fuse/splice/pair_linux.go
	@cp go.sum $(GOFUSE32)/go.sum
	@{ cat go.mod; echo; echo 'replace github.com/hanwen/go-fuse/v2 => ./$(GOFUSE32)/go-fuse'; } > $@

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

# bench-quic: SSH over a QUIC stream vs over TCP (peers/punch, both ends in
# one process): 256 MiB on loopback, the two taking turns (quic/tcp and CPU
# seconds per GiB), and 32 MiB at RTT 30 ms, 100 Mbit/s through
# testdata/wanproxy (TCP mode vs UDP mode, with the link's floor). About
# five minutes; medians and spread: testdata/bench/README.md.
QUICBENCH ?= -benchtime 3x -count 5
bench-quic:
	$(GO) test -run '^$$' -bench 'SSHTransfer|WANRead' $(QUICBENCH) ./peers/punch

# A one-command demo: two sharers and a mount at ./peers-demo, on
# this machine only (LAN discovery on loopback). Ctrl-C stops it.
demo: build
	DSFTP_BIN=$(abspath $(BIN)) testdata/demo/demo.sh

fmt:
	gofmt -w cmd fs peers share testdata

clean:
	rm -rf bin
