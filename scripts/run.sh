#!/usr/bin/env bash
# scripts/run.sh — weft on this machine in one command (Debian 12, as root):
#
#   1. builds weft (a static binary, CGO_ENABLED=0);
#   2. makes sure a Docker engine answers on /var/run/docker.sock — if none
#      does, installs Debian's docker.io and starts dockerd in the background
#      (log /var/log/dockerd.log, pidfile /var/run/docker.pid; no systemd
#      needed);
#   3. installs weft into that engine as the managed plugin $WEFT_PLUGIN
#      (default weftnet/weft:latest; scripts/build-plugin.sh builds it from
#      the Dockerfile and config.json) with its state in /var/lib/weft, and
#      enables it; a plugin built from another binary is replaced (its
#      networks and containers keep working: the state is in /var/lib/weft);
#   4. imports the busybox test image (test/image/mkimage.sh) if missing;
#   5. creates the weft network weft-demo and two containers on it, which
#      ping each other by name.
#
# Running it again is harmless: every step checks first.
#
#   scripts/run.sh [--managed | --legacy]
#
# --managed (the default): the managed plugin, as Docker users install weft.
# --legacy: for development, weft runs as a process on this host, installed
# as $WEFT_BIN_DIR/weft (default /usr/local/bin), serving the legacy plugin
# socket /run/docker/plugins/weft.sock (driver name weft; log
# /var/log/weft.log, pidfile /run/weft.pid; restarted if the binary changed).
# The two share /var/lib/weft, so switching stops the other one first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

mode=managed
for arg in "$@"; do
	case $arg in
	--legacy) mode=legacy ;;
	--managed) mode=managed ;;
	-h | --help)
		sed -n '2,28p' "$0"
		exit 0
		;;
	*)
		echo "run.sh: unknown argument $arg (use --managed or --legacy)" >&2
		exit 2
		;;
	esac
done

if [[ $(id -u) != 0 ]]; then
	echo "run.sh: run as root (weft manages links and iptables; dockerd needs root)" >&2
	exit 1
fi

bin_dir=${WEFT_BIN_DIR:-/usr/local/bin}
weft_bin=$bin_dir/weft
weft_sock=/run/docker/plugins/weft.sock
weft_pidfile=/run/weft.pid
weft_log=/var/log/weft.log
state_dir=${WEFT_STATE_DIR:-/var/lib/weft}
plugin=${WEFT_PLUGIN:-weftnet/weft:latest}
# The sha256 of the binary inside the installed plugin, to know when to rebuild.
plugin_stamp=/var/cache/weft/run-plugin.sha256
docker_sock=/var/run/docker.sock
image=weft/busybox:latest
net=weft-demo

step() { printf '==> %s\n' "$*"; }
docker() { command docker -H "unix://$docker_sock" "$@"; }

# ---- packages ---------------------------------------------------------------
need=()
have_pkg() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]; }
command -v dockerd >/dev/null || have_pkg docker.io || need+=(docker.io)
command -v iptables >/dev/null || need+=(iptables)
have_pkg busybox-static || need+=(busybox-static)
command -v ip >/dev/null || need+=(iproute2)
if ((${#need[@]})); then
	step "installing ${need[*]}"
	policy_rc=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		# Packages must not start services; this script starts what it needs.
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		policy_rc=1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/tmp/weft-run-apt.log 2>&1 || {
		cat /tmp/weft-run-apt.log
		exit 1
	}
	if [[ $policy_rc == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
fi
command -v go >/dev/null || {
	echo "run.sh: go is not installed" >&2
	exit 1
}

# ---- build ------------------------------------------------------------------
step "building weft"
work=$(mktemp -d /tmp/weft-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$(git describe --always --dirty 2>/dev/null || echo dev)" -o "$work/weft" .
echo "    $("$work/weft" version)"

# ---- Docker engine ----------------------------------------------------------
engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
if engine_up; then
	step "Docker engine $(docker version --format '{{.Server.Version}}') is running"
else
	step "starting dockerd (log /var/log/dockerd.log)"
	nohup dockerd --pidfile /var/run/docker.pid -H "unix://$docker_sock" </dev/null >>/var/log/dockerd.log 2>&1 &
	for _ in $(seq 1 60); do
		engine_up && break
		sleep 0.5
	done
	engine_up || {
		tail -20 /var/log/dockerd.log
		echo "run.sh: dockerd did not come up; see /var/log/dockerd.log" >&2
		exit 1
	}
	echo "    dockerd $(docker version --format '{{.Server.Version}}') is up (pid $(cat /var/run/docker.pid))"
fi

# ---- weft -------------------------------------------------------------------
weft_pid() {
	local pid
	pid=$(cat "$weft_pidfile" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	# Only our weft: the PID may have been recycled.
	[[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$weft_bin"* ]] || return 1
	echo "$pid"
}
stop_legacy() {
	local pid
	pid=$(weft_pid) || return 0
	kill -TERM "$pid"
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

# retire_demo DRIVER removes the demo containers and network if they are on
# DRIVER, while that driver still runs: removed later, through a stopped
# driver, their addresses and bridge would stay in weft's state.
retire_demo() {
	local have
	have=$(docker network inspect -f '{{.Driver}}' "$net" 2>/dev/null) || return 0
	[[ $have == "$1" ]] || return 0
	step "removing the demo network $net of driver $have before switching"
	docker rm -f weft-demo-a weft-demo-b >/dev/null 2>&1 || true
	docker network rm "$net" >/dev/null
}

start_legacy() {
	local binary_changed=0
	if ! cmp -s "$work/weft" "$weft_bin" 2>/dev/null; then
		mkdir -p "$bin_dir"
		install -m 0755 "$work/weft" "$weft_bin.new" && mv -f "$weft_bin.new" "$weft_bin"
		binary_changed=1
		echo "    installed $weft_bin"
	fi
	if plugin_enabled; then
		retire_demo "$plugin"
		step "disabling the managed plugin $plugin (it shares $state_dir with the legacy weft)"
		docker plugin disable -f "$plugin" >/dev/null
	fi
	if pid=$(weft_pid) && ((binary_changed)); then
		step "restarting weft (pid $pid) to run the new binary"
		stop_legacy
	fi
	if pid=$(weft_pid); then
		step "weft is running (pid $pid, log $weft_log)"
		return
	fi
	step "starting weft as a legacy plugin on $weft_sock (log $weft_log)"
	mkdir -p "$state_dir" "$(dirname "$weft_sock")"
	nohup "$weft_bin" serve --socket "$weft_sock" --state-dir "$state_dir" </dev/null >>"$weft_log" 2>&1 &
	echo $! >"$weft_pidfile"
	for _ in $(seq 1 50); do
		[[ -S $weft_sock ]] && break
		kill -0 "$(cat "$weft_pidfile")" 2>/dev/null || break
		sleep 0.1
	done
	if ! weft_pid >/dev/null || [[ ! -S $weft_sock ]]; then
		tail -20 "$weft_log"
		echo "run.sh: weft did not start; see $weft_log" >&2
		exit 1
	fi
	echo "    weft is up (pid $(cat "$weft_pidfile"))"
}

plugin_enabled() { [[ $(docker plugin inspect -f '{{.Enabled}}' "$plugin" 2>/dev/null) == true ]]; }

start_managed() {
	local sum
	sum=$(sha256sum "$work/weft" | cut -d' ' -f1)
	if pid=$(weft_pid); then
		retire_demo weft
		step "stopping the legacy weft (pid $pid): the managed plugin takes over $state_dir"
		stop_legacy
	fi
	if docker plugin inspect "$plugin" >/dev/null 2>&1 && [[ $(cat "$plugin_stamp" 2>/dev/null) == "$sum" ]]; then
		step "managed plugin $plugin is installed and up to date"
	else
		if docker plugin inspect "$plugin" >/dev/null 2>&1; then
			# Networks and containers keep working across the swap: the
			# kernel objects stay, and the new plugin reads $state_dir.
			step "replacing the managed plugin $plugin (built from another binary)"
			docker plugin disable -f "$plugin" >/dev/null 2>&1 || true
			docker plugin rm -f "$plugin" >/dev/null
		fi
		step "building the managed plugin $plugin (scripts/build-plugin.sh)"
		DOCKER_HOST=unix://$docker_sock "$repo/scripts/build-plugin.sh" --binary "$work/weft" "$plugin" >/dev/null
		mkdir -p "$(dirname "$plugin_stamp")"
		echo "$sum" >"$plugin_stamp"
	fi
	if plugin_enabled; then
		step "managed plugin $plugin is enabled"
	else
		# Docker does not create a missing bind-mount source.
		mkdir -p "$state_dir"
		docker plugin set "$plugin" state.source="$state_dir" >/dev/null
		step "enabling the managed plugin $plugin (state in $state_dir)"
		docker plugin enable "$plugin" >/dev/null
	fi
}

if [[ $mode == managed ]]; then
	start_managed
	driver=$plugin
	logs="the plugin's log is dockerd's: grep plugin= /var/log/dockerd.log"
else
	start_legacy
	driver=weft
	logs="tail -f $weft_log"
fi

# ---- image, network, containers --------------------------------------------
if docker image inspect "$image" >/dev/null 2>&1; then
	step "image $image is present"
else
	step "importing the busybox image $image"
	DOCKER=docker "$repo/test/image/mkimage.sh" -H "unix://$docker_sock" "$image"
fi

# A demo network of the other way of running weft is made again.
if have=$(docker network inspect -f '{{.Driver}}' "$net" 2>/dev/null) && [[ $have != "$driver" ]]; then
	step "re-creating network $net on driver $driver (it was on $have)"
	docker rm -f weft-demo-a weft-demo-b >/dev/null 2>&1 || true
	docker network rm "$net" >/dev/null
fi
if docker network inspect "$net" >/dev/null 2>&1; then
	step "network $net exists"
else
	step "creating network $net (driver and IPAM driver $driver)"
	docker network create -d "$driver" --ipam-driver "$driver" "$net" >/dev/null
fi

for c in weft-demo-a weft-demo-b; do
	state=$(docker inspect -f '{{.State.Running}}' "$c" 2>/dev/null || echo absent)
	case $state in
	true) step "container $c is running" ;;
	false)
		step "starting container $c"
		docker start "$c" >/dev/null
		;;
	*)
		step "running container $c on $net"
		docker run -d --name "$c" --network "$net" "$image" sleep 1000000000 >/dev/null
		;;
	esac
done

subnet=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' "$net")
step "weft-demo-a pings weft-demo-b by name (network $net, subnet $subnet)"
docker exec weft-demo-a ping -c 3 -W 2 weft-demo-b
step "weft-demo-b pings weft-demo-a by name"
docker exec weft-demo-b ping -c 3 -W 2 weft-demo-a

if [[ $mode == managed ]]; then
	stop_hint="docker plugin disable -f $driver   (running containers keep working)"
else
	stop_hint="kill \$(cat $weft_pidfile)   (running containers keep working)"
fi
cat <<EOF

weft works (driver name: $driver). Try next:
  docker exec -it weft-demo-a sh          # a shell on the weft network
  docker network create -d $driver --ipam-driver $driver --subnet 10.50.0.0/24 mynet
  docker network create -d $driver --ipam-driver $driver -o com.docker.network.bridge.enable_icc=false quiet
  docker run -d --network mynet -p 8080:80 --name web $image httpd -f -p 80
  docker run --rm --network mynet $image ip addr
  $logs
  scripts/test.sh                         # every test (unit, privileged, end-to-end)

Clean up the demo:  docker rm -f weft-demo-a weft-demo-b && docker network rm $net
Stop weft:          $stop_hint
EOF
