#!/bin/sh
# Starts a FluxPulse cluster on loopback: 3 ingesters in zones a, b and c
# (replication factor 3), 3 store-gateways (replication factor 3), 2
# distributors, 1 querier, 2 compactors, 2 rulers and 1 alertmanager, sharing one filesystem bucket, one key file, one
# runtime file and one cluster secret. Prints the URLs, and stops everything on Ctrl-C.
#
#   deploy/local-cluster.sh [DIR]      (default DIR: ./local-cluster)
#
# The binary is built from this checkout (or taken from $FLUXPULSE_BIN);
# $FLUXPULSE_FLAGS are added to every process's flags (limits, say).
# Tenants are decided by X-Scope-OrgID (-auth.mode=header): this is a
# cluster for trying things out on one machine, not for production.
set -eu
cd "$(dirname "$0")/.."
dir=${1:-./local-cluster}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

bin=${FLUXPULSE_BIN:-}
if [ -z "$bin" ]; then
	bin="$dir/fluxpulse"
	echo "building $bin"
	go build -o "$bin" ./cmd/fluxpulse
fi

secret="$dir/cluster-secret"
if [ ! -f "$secret" ]; then
	umask 077
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$secret"
	echo >>"$secret"
	umask 022
fi

# Ports: public HTTP 91xx, internal HTTP 92xx, gRPC 93xx, memberlist 94xx.
seeds=127.0.0.1:9401,127.0.0.1:9402,127.0.0.1:9403
common="-auth.mode=header -server.grpc-auth-token-file=$secret -memberlist.join=$seeds -memberlist.bind-addr=127.0.0.1
 -ingester.ring.zone-awareness-enabled -ingester.ring.heartbeat-period=5s -ingester.ring.heartbeat-timeout=30s
 -blocks-storage.filesystem.dir=$dir/bucket -encryption.key-file=$dir/master-keys.json
 -store-gateway.sharding-enabled -store-gateway.sharding-ring.heartbeat-period=5s -store-gateway.sharding-ring.heartbeat-timeout=30s
 -runtime-config.file=$dir/runtime.yaml -log.level=warn ${FLUXPULSE_FLAGS:-}"

pids=""
start() { # name target index extra…
	name=$1 target=$2 n=$3
	shift 3
	mkdir -p "$dir/$name"
	# shellcheck disable=SC2086 # $common is a list of flags
	"$bin" -target="$target" -data.dir="$dir/$name" \
		-server.http-listen-address=127.0.0.1:91$n -server.internal-listen-address=127.0.0.1:92$n \
		-server.grpc-listen-address=127.0.0.1:93$n -memberlist.bind-port=94$n \
		$common "$@" >"$dir/$name.log" 2>&1 &
	pids="$pids $!"
}

stop() {
	echo
	echo "stopping…"
	# shellcheck disable=SC2086 # a list of process IDs
	kill $pids 2>/dev/null || true
	wait
	echo "stopped; data and logs are in $dir"
}
trap stop INT TERM

zones="a b c"
i=1
for z in $zones; do
	start "ingester-$z" ingester "0$i" -ingester.ring.instance-id="ingester-$z" \
		-ingester.ring.instance-addr="127.0.0.1:930$i" -ingester.ring.instance-availability-zone="$z"
	i=$((i + 1))
done
for i in 1 2 3; do
	start "store-gateway-$i" store-gateway "6$i" -store-gateway.sharding-ring.instance-id="store-gateway-$i" \
		-store-gateway.sharding-ring.instance-addr="127.0.0.1:936$i"
done
start distributor-1 distributor 11
start distributor-2 distributor 12
start querier querier 21
for k in 1 2; do # the rulers share the rule groups, the compactors the tenants, over their rings
	start "compactor-$k" compactor "3$k" -compactor.ring.instance-id="compactor-$k"
	start "ruler-$k" ruler "4$k" -ruler.ring.instance-id="ruler-$k" -ruler.multitenant-alertmanager-url=http://127.0.0.1:9151
done
start alertmanager alertmanager 51

printf 'waiting for the cluster'
for n in 01 02 03 61 62 63 11 12 21 31 32 41 42 51; do
	tries=0
	until curl -fs "http://127.0.0.1:91$n/ready" >/dev/null 2>&1; do
		tries=$((tries + 1))
		if [ $tries -gt 120 ]; then
			echo
			echo "a process did not become ready; see the logs in $dir"
			stop
			exit 1
		fi
		printf .
		sleep 1
	done
done
echo

cat <<MSG

FluxPulse cluster on loopback (data in $dir):

  remote write   http://127.0.0.1:9111/api/v1/push  or  http://127.0.0.1:9112/api/v1/push
                 (header X-Scope-OrgID: <tenant>)
  Grafana        http://127.0.0.1:9121/prometheus   (querier; same header)
  rules API      http://127.0.0.1:9141/prometheus/config/v1/rules (either ruler: 9141, 9142)
  Alertmanager   http://127.0.0.1:9151/api/v1/alerts (configuration),
                 amtool --alertmanager.url=http://127.0.0.1:9151/alertmanager (sends no tenant:
                 put X-Scope-OrgID in an --http.config.file's http_headers)
  ring           http://127.0.0.1:9221/ring          memberlist: http://127.0.0.1:9221/memberlist
  metrics        http://127.0.0.1:92NN/metrics       (NN: 01-03 ingesters, 11-12 distributors,
                                                      21 querier, 31-32 compactors, 41-42 rulers, 51 alertmanager,
                                                      61-63 store-gateways; their ring: /store-gateway/ring)

Ctrl-C stops the cluster.
MSG
wait
