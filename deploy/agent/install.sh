#!/bin/sh
# Installs fluxpulse-agent as a systemd service and starts it.
#
#   sudo ./install.sh --url https://fluxpulse.example.com/api/v1/push \
#       --token-file ./token [--tenant NAME] [--process nginx,postgres] \
#       [--binary ./fluxpulse-agent] [--label env=prod] [--protocol 2.0]
#
# The token may also come in the FLUXPULSE_TOKEN environment variable.
# Running it again is safe: it updates what it is given, keeps the rest, and
# restarts the service. With DESTDIR set it only lays out the files under
# DESTDIR (no user, no systemctl), for packaging and tests.
set -eu

usage() {
	sed -n '2,11s/^# \{0,1\}//p' "$0"
	exit 2
}

die() {
	echo "install.sh: $*" >&2
	exit 1
}

here=$(cd "$(dirname "$0")" && pwd)
binary=""
url=""
token_file=""
tenant=""
processes=""
labels=""
protocol=""
while [ $# -gt 0 ]; do
	case "$1" in
	--url) url=${2:?--url needs a value}; shift 2 ;;
	--token-file) token_file=${2:?--token-file needs a value}; shift 2 ;;
	--tenant) tenant=${2:?--tenant needs a value}; shift 2 ;;
	--process) processes=${2:?--process needs a value}; shift 2 ;;
	--label) labels="$labels ${2:?--label needs a value}"; shift 2 ;;
	--protocol) protocol=${2:?--protocol needs a value}; shift 2 ;;
	--binary) binary=${2:?--binary needs a value}; shift 2 ;;
	-h | --help) usage ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done

root=${DESTDIR:-}
etc="$root/etc/fluxpulse-agent"
env_file="$etc/agent.env"
unit="$root/etc/systemd/system/fluxpulse-agent.service"
bin="$root/usr/local/bin/fluxpulse-agent"
user=fluxpulse-agent

if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
	die "run as root (sudo $0 ...)"
fi

# The binary: the one given, else one next to this script, else the one
# installed before.
if [ -z "$binary" ] && [ -x "$here/fluxpulse-agent" ]; then
	binary="$here/fluxpulse-agent"
fi
if [ -z "$binary" ] && [ ! -x "$bin" ]; then
	die "no fluxpulse-agent binary: pass --binary PATH"
fi

if [ -z "$root" ] && ! id "$user" >/dev/null 2>&1; then
	useradd --system --no-create-home --home-dir /var/lib/fluxpulse-agent --shell /usr/sbin/nologin "$user"
fi

mkdir -p "$etc" "$(dirname "$unit")" "$(dirname "$bin")"
if [ -n "$binary" ]; then
	# Copy then rename, so that a running agent is never half overwritten.
	cp "$binary" "$bin.new"
	chmod 0755 "$bin.new"
	mv -f "$bin.new" "$bin"
fi

# The token, readable by root and the agent only.
if [ -n "$token_file" ] || [ -n "${FLUXPULSE_TOKEN:-}" ]; then
	umask 077
	if [ -n "$token_file" ]; then
		cp "$token_file" "$etc/token.new"
	else
		printf '%s\n' "$FLUXPULSE_TOKEN" >"$etc/token.new"
	fi
	umask 022
	if [ -z "$root" ]; then
		chown "root:$user" "$etc/token.new"
		chmod 0640 "$etc/token.new"
	fi
	mv -f "$etc/token.new" "$etc/token"
fi

# The flags, written from the settings given; kept when none are given.
if [ -n "$url$tenant$processes$labels$protocol$token_file${FLUXPULSE_TOKEN:-}" ] || [ ! -f "$env_file" ]; then
	[ -n "$url" ] || die "--url is required (with all other settings) when settings change"
	[ -f "$etc/token" ] || [ -n "$tenant" ] || die "give --token-file (or FLUXPULSE_TOKEN) or --tenant"
	args="-remote-write.url=$url"
	if [ -f "$etc/token" ]; then
		args="$args -remote-write.token-file=/etc/fluxpulse-agent/token"
	fi
	[ -z "$tenant" ] || args="$args -remote-write.tenant=$tenant"
	[ -z "$processes" ] || args="$args -process=$processes"
	[ -z "$protocol" ] || args="$args -remote-write.protocol=$protocol"
	for l in $labels; do
		args="$args -external-label=$l"
	done
	cat >"$env_file.new" <<EOF
# Flags of fluxpulse-agent (see fluxpulse-agent -help). Written by install.sh;
# run it again, or edit this file and run: systemctl restart fluxpulse-agent
FLUXPULSE_AGENT_ARGS="$args"
EOF
	mv -f "$env_file.new" "$env_file"
fi

cp "$here/fluxpulse-agent.service" "$unit.new"
mv -f "$unit.new" "$unit"

if [ -n "$root" ]; then
	echo "files laid out under $root"
	exit 0
fi
systemctl daemon-reload
systemctl enable fluxpulse-agent.service >/dev/null 2>&1
systemctl restart fluxpulse-agent.service
sleep 1
if systemctl is-active --quiet fluxpulse-agent.service; then
	echo "fluxpulse-agent is running. What it sends: $bin -dry-run"
else
	systemctl status --no-pager fluxpulse-agent.service >&2 || true
	die "fluxpulse-agent did not start; see: journalctl -u fluxpulse-agent"
fi
