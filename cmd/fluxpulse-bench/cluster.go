package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clusterConfig is the flags of the cluster command.
type clusterConfig struct {
	load      loadConfig
	fluxpulse string
	work      string
	runs      int
	heapDir   string // where each cluster process's heap profile goes after a run; empty: none
	cpuDir    string // where each cluster process's CPU profile of the measured push goes; empty: none
	cpuFor    time.Duration
	scenarios []string
}

// clusterCmd runs the same load against one FluxPulse process
// (-target=all) and against a cluster on loopback (3 ingesters in zones a,
// b, c with replication factor 3, 2 distributors, 1 querier), summing the
// CPU and memory of every process, then each paced at 70% of the
// machine's CPU for the push latency.
func clusterCmd(args []string) error {
	var c clusterConfig
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	c.load.registerFlags(fs)
	fs.StringVar(&c.fluxpulse, "fluxpulse", "", "FluxPulse binary.")
	fs.StringVar(&c.work, "work-dir", "", "Directory for the processes' data (default: a temporary directory).")
	fs.IntVar(&c.runs, "runs", 1, "Runs of each unpaced scenario; the one with the median samples per CPU second is reported.")
	fs.StringVar(&c.heapDir, "heap-profile-dir", "", "Directory to write each cluster process's heap profile to after each cluster run (taken after a collection, so it shows what is live); empty: none.")
	fs.StringVar(&c.cpuDir, "cpu-profile-dir", "", "Directory to write each cluster process's CPU profile to, taken from the start of each measured cluster push for -cpu-profile-duration; empty: none.")
	fs.DurationVar(&c.cpuFor, "cpu-profile-duration", 10*time.Second, "Length of the CPU profiles of -cpu-profile-dir; keep it shorter than the push.")
	list := fs.String("scenarios", "steady", "Shapes of load, comma-separated, as compare's: steady (with the paced runs), cold, churn.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.fluxpulse == "" {
		return errors.New("-fluxpulse is required")
	}
	var err error
	if c.scenarios, err = parseScenarios(*list); err != nil {
		return err
	}
	if c.work == "" {
		var err error
		if c.work, err = os.MkdirTemp("", "fluxpulse-bench-cluster-"); err != nil {
			return err
		}
		defer os.RemoveAll(c.work)
	}
	c.load.Tenants = 1
	var rs []result
	for _, sc := range c.scenarios {
		for _, proto := range []int{1, 2} {
			cfg := scenarios[sc](c.load)
			cfg.Protocol = proto
			for _, apart := range []bool{false, true} {
				res, err := c.median(sc, cfg, apart)
				rs = append(rs, res)
				if err != nil {
					printResults(os.Stdout, rs)
					return err
				}
				if sc == "steady" && proto == 1 {
					paced := cfg
					paced.Rate = 0.7 * float64(runtime.NumCPU()) * res.samplesPerCPU()
					res, err := c.once(sc, paced, apart)
					rs = append(rs, res)
					if err != nil {
						printResults(os.Stdout, rs)
						return err
					}
				}
			}
		}
	}
	printResults(os.Stdout, rs)
	return nil
}

func (c clusterConfig) median(scenario string, cfg loadConfig, apart bool) (result, error) {
	var all []result
	for range max(1, c.runs) {
		res, err := c.once(scenario, cfg, apart)
		if err != nil {
			return res, err
		}
		all = append(all, res)
	}
	for i := range all { // a sort of a handful
		for j := i + 1; j < len(all); j++ {
			if all[j].samplesPerCPU() < all[i].samplesPerCPU() {
				all[i], all[j] = all[j], all[i]
			}
		}
	}
	return all[len(all)/2], nil
}

// once starts the processes, pushes, verifies and stops them.
func (c clusterConfig) once(scenario string, cfg loadConfig, apart bool) (result, error) {
	kind := "fluxpulse -target=all"
	if apart {
		kind = "cluster RF=3 (3 ingesters, 2 distributors, 1 querier)"
	}
	name := fmt.Sprintf("%s, RW %d.0, %s", kind, cfg.Protocol, scenario)
	if cfg.Rate > 0 {
		name += fmt.Sprintf(", paced at %.0f samples/s", cfg.Rate)
	}
	fmt.Fprintf(os.Stderr, "== %s: %d series × %d rounds…\n", name, cfg.SeriesPerTenant, cfg.Rounds)
	p := newPlan(cfg)
	runtime.GC()
	nodes, push, read, err := c.start(apart)
	defer func() {
		for _, n := range nodes {
			_ = n.stop()
		}
	}()
	if err != nil {
		return result{name: name}, err
	}
	p.cfg.URL, p.cfg.Path = strings.Join(push, ","), "/api/v1/push"
	if p.warm != nil {
		p.warm.cfg.URL = p.cfg.URL
	}
	pids := make([]int, len(nodes))
	for k, n := range nodes {
		pids[k] = n.cmd.Process.Pid
	}
	var started func() func()
	if apart && c.cpuDir != "" {
		started = func() func() { return startCPUProfiles(c.cpuDir, name, c.cpuFor, nodes) }
	}
	res, err := measureWith(p, started, pids...)
	res.name = name
	if err != nil {
		return res, err
	}
	if apart {
		printNodeUsage(nodes)
		if c.heapDir != "" {
			if err := saveHeapProfiles(c.heapDir, name, nodes); err != nil {
				return res, err
			}
		}
	}
	res.verifyErr = p.verify(client, read+"/prometheus/api/v1/read")
	res.verified = true
	return res, nil
}

// start starts one process with every role, or the cluster, and returns
// them with the push URLs and the read URL.
func (c clusterConfig) start(apart bool) (nodes []*receiver, push []string, read string, err error) {
	dir := filepath.Join(c.work, strconv.FormatInt(time.Now().UnixNano(), 36))
	if !apart {
		r, err := c.node(dir, "all", nil)
		if err != nil {
			return nil, nil, "", err
		}
		return []*receiver{r}, []string{r.url()}, r.url(), nil
	}
	secret := filepath.Join(dir, "cluster-secret")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, "", err
	}
	if err := os.WriteFile(secret, []byte("bench-cluster-secret-0123456789abcdef\n"), 0o600); err != nil {
		return nil, nil, "", err
	}
	var gossip []string
	for range 3 {
		a, err := freeAddr()
		if err != nil {
			return nil, nil, "", err
		}
		gossip = append(gossip, a)
	}
	common := []string{"-server.grpc-auth-token-file=" + secret, "-memberlist.join=" + strings.Join(gossip, ","),
		"-memberlist.bind-addr=127.0.0.1", "-ingester.ring.zone-awareness-enabled",
		"-blocks-storage.filesystem.dir=" + filepath.Join(dir, "bucket"), "-encryption.key-file=" + filepath.Join(dir, "master-keys.json")}
	add := func(role string, extra ...string) (*receiver, error) {
		r, err := c.node(filepath.Join(dir, fmt.Sprint(role, len(nodes))), role, append(append([]string{}, common...), extra...))
		if r != nil {
			nodes = append(nodes, r)
		}
		return r, err
	}
	for k, zone := range []string{"a", "b", "c"} {
		grpc, err := freeAddr()
		if err != nil {
			return nodes, nil, "", err
		}
		if _, err := add("ingester", "-memberlist.bind-port="+portOf(gossip[k]), "-server.grpc-listen-address="+grpc,
			"-ingester.ring.instance-id=ingester-"+zone, "-ingester.ring.instance-addr="+grpc,
			"-ingester.ring.instance-availability-zone="+zone); err != nil {
			return nodes, nil, "", err
		}
	}
	gossipPort := func() string {
		a, _ := freeAddr()
		return "-memberlist.bind-port=" + portOf(a)
	}
	for range 2 {
		d, err := add("distributor", gossipPort())
		if err != nil {
			return nodes, nil, "", err
		}
		push = append(push, d.url())
	}
	q, err := add("querier", gossipPort())
	if err != nil {
		return nodes, nil, "", err
	}
	return nodes, push, q.url(), waitActive(nodes, 3)
}

// node starts one FluxPulse process with the given roles.
func (c clusterConfig) node(dir, target string, extra []string) (*receiver, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	internal, err := freeAddr()
	if err != nil {
		return nil, err
	}
	r := &receiver{kind: "fluxpulse", bin: c.fluxpulse, dir: dir, addr: addr,
		args: append([]string{"-target=" + target}, extra...), internal: internal}
	return r, r.start()
}

// printNodeUsage writes each process's share of the cluster's CPU and
// memory to stderr: the CPU since its start (warm-up included), its
// resident memory and the Go heap it has in use, by its -target.
func printNodeUsage(nodes []*receiver) {
	for _, n := range nodes {
		pid := n.cmd.Process.Pid
		cpu, err1 := procCPU(pid)
		rss, err2 := procRSS(pid)
		heap, err3 := metricValue("http://"+n.internal, "go_memstats_heap_inuse_bytes")
		if err := errors.Join(err1, err2, err3); err != nil {
			fmt.Fprintf(os.Stderr, "   %s (pid %d): %v\n", n.args[0], pid, err)
			continue
		}
		fmt.Fprintf(os.Stderr, "   %s (pid %d): %.2f CPU s since start, RSS %d MiB, Go heap in use %d MiB\n",
			n.args[0], pid, cpu, rss>>20, int64(heap)>>20)
	}
}

// startCPUProfiles starts a CPU profile of length d of every process of a
// run, and returns a function that waits for them and writes them to dir.
func startCPUProfiles(dir, run string, d time.Duration, nodes []*receiver) func() {
	var wg sync.WaitGroup
	for _, n := range nodes {
		path := profilePath(dir, run, n, "cpu")
		wg.Go(func() {
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", n.internal, max(1, int(d.Seconds())))
			err := os.MkdirAll(dir, 0o755)
			if err == nil {
				err = download(url, path)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "   CPU profile of pid %d: %v\n", n.cmd.Process.Pid, err)
				return
			}
			fmt.Fprintf(os.Stderr, "   CPU profile: %s\n", path)
		})
	}
	return wg.Wait
}

// profilePath names the profile of one process of a run after the run,
// its -target and its pid.
func profilePath(dir, run string, n *receiver, kind string) string {
	slug := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(run))
	return filepath.Join(dir, fmt.Sprintf("%s_%s_%d.%s.pb.gz", slug, strings.TrimPrefix(n.args[0], "-target="), n.cmd.Process.Pid, kind))
}

// saveHeapProfiles writes the heap profile of every process of a run to
// dir, one file per process named after the run, its -target and its pid.
func saveHeapProfiles(dir, run string, nodes []*receiver) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, n := range nodes {
		pid := n.cmd.Process.Pid
		path := profilePath(dir, run, n, "heap")
		if err := download("http://"+n.internal+"/debug/pprof/heap?gc=1", path); err != nil {
			return fmt.Errorf("heap profile of pid %d: %w", pid, err)
		}
		fmt.Fprintf(os.Stderr, "   heap profile: %s\n", path)
	}
	return nil
}

// download writes the body of a GET of url to path.
func download(url, path string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

var activeRE = regexp.MustCompile(`(?m)^fluxpulse_ring_members\{name="ingester",state="ACTIVE"\} (\d+)`)

// waitActive waits until every process sees n ACTIVE ingesters, so that
// every series is written to all its replicas from the first request.
func waitActive(nodes []*receiver, n int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for _, r := range nodes {
		for {
			resp, err := http.Get("http://" + r.internal + "/metrics")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if m := activeRE.FindSubmatch(b); m != nil && string(m[1]) == strconv.Itoa(n) {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s does not see %d ACTIVE ingesters; see %s", r.addr, n, r.log.Name())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}
