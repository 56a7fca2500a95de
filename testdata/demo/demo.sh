#!/usr/bin/env bash
# The dsftp demo (`make demo`): two sharers of small folders and one mount,
# all on this machine, finding each other by LAN discovery on the loopback
# interface only (nothing leaves this machine). Ctrl-C unmounts and stops
# everything.
#
# Environment:
#   DSFTP_BIN      dsftp binary to use (default: build bin/dsftp)
#   DEMO_MOUNT     mountpoint (default: ./peers-demo at the top of the
#                  repository; ./peers there is the peers Go package)
#   DEMO_LAN_PORT  UDP port for LAN discovery (default 21039, apart from
#                  the real default so a running dsftp does not join in)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
demo=$root/testdata/demo
mnt=${DEMO_MOUNT:-$root/peers-demo}
port=${DEMO_LAN_PORT:-21039}
bin=${DSFTP_BIN:-}

if [ -z "$bin" ]; then
	echo "demo: building dsftp"
	(cd "$root" && go build -o bin/dsftp ./cmd/dsftp)
	bin=$root/bin/dsftp
fi
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac

for tool in fusermount3 mountpoint; do
	if ! command -v "$tool" >/dev/null; then
		echo "demo: $tool not found; install FUSE 3 (apt-get install fuse3) and try again" >&2
		exit 1
	fi
done
if [ ! -e /dev/fuse ]; then
	echo "demo: /dev/fuse is missing; FUSE is needed to mount (load the fuse module or run on a machine with FUSE)" >&2
	exit 1
fi
if mountpoint -q "$mnt" 2>/dev/null; then
	echo "demo: $mnt is already mounted; unmount it first: fusermount3 -u $mnt" >&2
	exit 1
fi

logs=$(mktemp -d "${TMPDIR:-/tmp}/dsftp-demo.XXXXXX")
pids=()
made_mnt=
stopped=

# say prints to the terminal, if there still is one: after `make demo | tee`
# and Ctrl-C, tee is gone, and a write must not end the cleanup.
say() { echo "$@" 2>/dev/null || true; }

cleanup() {
	[ -n "$stopped" ] && return
	stopped=1
	# No signal ends the cleanup halfway: SIGPIPE (the reader of our
	# output is gone) makes writes fail instead; Ctrl-C again is ignored.
	trap '' PIPE INT TERM HUP
	set +e
	say
	say "demo: stopping"
	# Newest first: the mount unmounts while the shares it reads still
	# answer, then the shares stop.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[i]}" 2>/dev/null || true
		wait "${pids[i]}" 2>/dev/null || true
	done
	if mountpoint -q "$mnt" 2>/dev/null; then
		fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt" || true
	fi
	if [ -n "$made_mnt" ]; then rmdir "$mnt" 2>/dev/null || true; fi
	rm -rf "$logs"
	say "demo: stopped; nothing is mounted or running any more"
}
trap cleanup EXIT
trap 'exit 0' INT # Ctrl-C is how the demo is meant to end
trap 'exit 143' TERM
trap 'exit 129' HUP # the terminal closed

# Loopback only: the demo's shares listen on 127.0.0.1 and announce on lo.
common=(--discovery lan --lan-interface lo --lan-port "$port" --listen 127.0.0.1:0)

start() { # name dir logfile command...
	local name=$1 dir=$2 log=$3
	shift 3
	# setsid: Ctrl-C in the terminal signals the whole foreground process
	# group; the dsftp processes must not stop on their own, racing the
	# trap, but in order through cleanup (the mount first).
	# Each its own configuration and state (host key, known names): the
	# demo leaves the user's own ~/.config/dsftp alone.
	mkdir -p "$logs/$name/config" "$logs/$name/state"
	(cd "$dir" && export XDG_CONFIG_HOME="$logs/$name/config" XDG_STATE_HOME="$logs/$name/state" && exec setsid "$@") >"$log" 2>&1 &
	pids+=($!)
	echo "demo: started $name (pid $!)"
}

start alice "$demo/alice" "$logs/alice.log" "$bin" share --name alice "${common[@]}" .
start bob "$demo/bob" "$logs/bob.log" "$bin" share --name bob "${common[@]}" .
if [ ! -d "$mnt" ]; then
	mkdir -p "$mnt"
	made_mnt=1
fi
start you "$demo/you" "$logs/you.log" "$bin" mount --name you "${common[@]}" "$mnt"

fail() {
	echo "demo: $*" >&2
	for f in "$logs"/*.log; do
		echo "--- $(basename "$f" .log):" >&2
		tail -n 20 "$f" >&2
	done
	exit 1
}

for _ in $(seq 1 300); do # up to 30 s; usually well under a second
	# Listed, and readable: alice and bob have heard of us too.
	if ls "$mnt/alice" "$mnt/bob" >/dev/null 2>&1; then break; fi
	for pid in "${pids[@]}"; do
		kill -0 "$pid" 2>/dev/null || fail "a dsftp process (pid $pid) exited early"
	done
	sleep 0.1
done
ls "$mnt/alice" "$mnt/bob" >/dev/null 2>&1 || fail "alice and bob did not appear in $mnt within 30 s"

rel=$mnt
case $mnt in "$PWD"/*) rel=${mnt#"$PWD"/} ;; esac
cat <<MSG

demo: alice and bob share folders; your dsftp found them and mounted them at $rel
demo ready
Try, in another terminal:

    ls $rel
    cat $rel/alice/hello.txt
    ls -R $rel/bob
    cp $rel/alice/recipes/pancakes.md /tmp/
    touch $rel/bob/new.txt          # refused: shares are read-only

Press Ctrl-C here to unmount and stop everything.
MSG

# Sleep until Ctrl-C, or until a dsftp process dies.
while :; do
	for pid in "${pids[@]}"; do
		kill -0 "$pid" 2>/dev/null || fail "a dsftp process (pid $pid) exited"
	done
	sleep 1 &
	wait $! || true
done
