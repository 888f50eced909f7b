// Command fluxpulse-bench is FluxPulse's load tool. It pushes
// node_exporter-like series with remote write 1.0 or 2.0 to any receiver
// (FluxPulse or Prometheus), with every request encoded before the clock
// starts and each series owned by one sender, measures the receiver's CPU
// seconds and resident memory from /proc, push latency, and dashboard query
// latency, and verifies over remote read that every sample arrived with its
// value.
//
//	fluxpulse-bench run -url http://127.0.0.1:9009 -pid 1234 …   one load against a running receiver
//	fluxpulse-bench compare -prometheus BIN -fluxpulse BIN …     FluxPulse and Prometheus side by side
//	fluxpulse-bench cluster -fluxpulse BIN …                     one process against a local RF=3 cluster
//	fluxpulse-bench idle -url … -metrics-url … -tenants 1000     the heap idle tenants leave behind
//	fluxpulse-bench longrange -prometheus BIN -fluxpulse BIN …   a week of data, a dashboard over it refreshed
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: fluxpulse-bench run|compare|cluster|idle|longrange [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "compare":
		err = compareCmd(os.Args[2:])
	case "cluster":
		err = clusterCmd(os.Args[2:])
	case "idle":
		err = idleCmd(os.Args[2:])
	case "longrange":
		err = longRangeCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: run, compare, cluster, idle or longrange", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fluxpulse-bench:", err)
		os.Exit(1)
	}
}

func (c *loadConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Path, "path", "/api/v1/push", "Push path.")
	fs.IntVar(&c.Protocol, "protocol", 1, "Remote write protocol: 1 or 2.")
	fs.IntVar(&c.Tenants, "tenants", 1, "Tenants.")
	fs.IntVar(&c.SeriesPerTenant, "series", 100_000, "Series per tenant (node_exporter-like, 129 a host).")
	fs.IntVar(&c.Rounds, "rounds", 10, "Samples per series.")
	fs.IntVar(&c.Senders, "senders", 8, "Concurrent senders.")
	fs.IntVar(&c.Batch, "batch", 2000, "Samples per request.")
	fs.DurationVar(&c.Interval, "interval", 15*time.Second, "Time between a series' samples.")
	fs.Float64Var(&c.Rate, "rate", 0, "Samples per second to send; 0 sends as fast as the receiver takes them.")
	fs.IntVar(&c.ChurnEvery, "churn-every", 0, "Replace hosts every this many rounds; 0: no churn.")
	fs.Float64Var(&c.ChurnFraction, "churn-fraction", 0.1, "Share of hosts replaced at each churn.")
	fs.StringVar(&c.Auth, "auth", "header", "header (X-Scope-OrgID), none, or bearer:<token>.")
	fs.BoolVar(&c.Warmup, "warmup", true, "Push one round before the measured ones, so that tenants and series exist when the clock starts (steady-state figures).")
}

func runCmd(args []string) error {
	var cfg loadConfig
	var repeats int
	var verify bool
	var readPath, queryPrefix, readURL, pidList string
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfg.registerFlags(fs)
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:9009", "Receiver base URL; comma-separated URLs (the distributors of a cluster) share the senders.")
	fs.StringVar(&readURL, "read-url", "", "Base URL for reading back and for queries (a cluster's querier); default: the first -url.")
	fs.StringVar(&pidList, "pid", "", "Receiver process IDs, comma-separated, for CPU and memory figures summed over them (every process of a cluster).")
	fs.BoolVar(&verify, "verify", true, "Read every sample back over remote read.")
	fs.StringVar(&readPath, "read-path", "/prometheus/api/v1/read", "Remote read path (Prometheus: /api/v1/read).")
	fs.StringVar(&queryPrefix, "query-prefix", "/prometheus", "Prefix of the query API (Prometheus: empty).")
	fs.IntVar(&repeats, "query-repeats", 5, "Dashboard refreshes to time; 0 skips the query phase.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "encoding %d tenants × %d series × %d rounds…\n", cfg.Tenants, cfg.SeriesPerTenant, cfg.Rounds)
	pids, err := parsePIDs(pidList)
	if err != nil {
		return err
	}
	if readURL == "" {
		readURL = strings.Split(cfg.URL, ",")[0]
	}
	p := newPlan(cfg)
	r, err := measure(p, pids...)
	if err != nil {
		return err
	}
	if verify {
		r.verifyErr = p.verify(client, readURL+readPath)
		r.verified = true
	}
	if repeats > 0 {
		r.queries = p.runQueries(client, readURL+queryPrefix, tenantName(0), repeats)
	}
	printResults(os.Stdout, []result{r})
	return nil
}

// parsePIDs reads a comma-separated list of process IDs.
func parsePIDs(list string) ([]int, error) {
	var pids []int
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("-pid: %q is not a process ID", f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 5 * time.Minute}
