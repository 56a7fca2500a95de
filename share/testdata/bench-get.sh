#!/usr/bin/env bash
# Time OpenSSH `sftp get` of a 1 GiB file from `dsftp share` and from
# OpenSSH's sshd (internal-sftp) on loopback, in one run, alternating.
# Needs root (sshd) and openssh-client/openssh-server. Built without -race.
#
#   share/testdata/bench-get.sh            # 1 GiB, 3 gets per server and buffer size
#   DSFTP_BENCH_MB=256 share/testdata/bench-get.sh 1
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-3}"
go test -run '^$' -bench 'SFTPGet' -benchtime "${n}x" -count 1 -timeout 60m ./share
