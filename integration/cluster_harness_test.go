package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxpulse/fluxpulse/testbin"
)

// options shape a cluster.
type options struct {
	ingesters    int
	zones        []string // zone of ingester k is zones[k % len]; empty: no zone awareness
	distributors int
	queriers     int
	frontends    int // query-frontend processes in front of the queriers, over HTTP
	rulers       int
	compactors   int
	// storeGateways run with -store-gateway.sharding-enabled on every
	// node: queriers and rulers read shipped blocks through them.
	storeGateways int
	// alerting adds an alertmanager (and a ruler, if rulers is 0); the
	// rulers send alerts to it (-ruler.multitenant-alertmanager-url).
	alerting bool
	args     []string // for every process
	env      []string // environment of every process (fault injection)
}

// node is one FluxPulse process of the cluster.
type node struct {
	name, role string
	dir        string
	http       string // public listener
	internal   string // /metrics, /ring
	grpc       string
	gossip     string
	args       []string
	proc       *testbin.Process
}

func (n *node) url() string { return "http://" + n.http }

// cluster is a running set of nodes sharing one bucket, key file and
// cluster secret.
type cluster struct {
	t            *testing.T
	bin          string
	shared       string
	nodes        []*node
	ingesters    []*node
	distributors []*node
	queriers     []*node
	frontends    []*node
	rulers       []*node
	compactors   []*node
	gateways     []*node  // store-gateways
	ruler, am    *node    // with options.alerting: the first ruler, the alertmanager
	common       []string // arguments of every node
	env          []string
	zones        []string
}

func startCluster(t *testing.T, o options) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: testbin.FluxPulse(t, "fluxpulse"), shared: t.TempDir()}
	secret := filepath.Join(c.shared, "cluster-secret")
	if err := os.WriteFile(secret, []byte("e2e-cluster-secret-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for k := range o.ingesters {
		c.ingesters = append(c.ingesters, c.newNode("ingester", k))
	}
	for k := range o.storeGateways {
		c.gateways = append(c.gateways, c.newNode("store-gateway", k))
	}
	for k := range o.distributors {
		c.distributors = append(c.distributors, c.newNode("distributor", k))
	}
	for k := range o.queriers {
		c.queriers = append(c.queriers, c.newNode("querier", k))
	}
	for k := range o.frontends {
		c.frontends = append(c.frontends, c.newNode("query-frontend", k))
	}
	for k := range o.rulers {
		c.rulers = append(c.rulers, c.newNode("ruler", k))
	}
	for k := range o.compactors {
		c.compactors = append(c.compactors, c.newNode("compactor", k))
	}
	var alerting []*node
	if o.alerting {
		if len(c.rulers) == 0 {
			c.rulers = append(c.rulers, c.newNode("ruler", 0))
		}
		c.ruler, c.am = c.rulers[0], c.newNode("alertmanager", 0)
		alerting = []*node{c.am}
	}
	var seeds []string
	for _, n := range c.ingesters {
		seeds = append(seeds, n.gossip)
	}
	common := append([]string{"-auth.mode=header", "-server.grpc-auth-token-file=" + secret,
		"-memberlist.join=" + strings.Join(seeds, ","), "-memberlist.bind-addr=127.0.0.1",
		"-ingester.ring.heartbeat-period=1s", "-ingester.ring.heartbeat-timeout=20s",
		"-blocks-storage.filesystem.dir=" + filepath.Join(c.shared, "bucket"),
		"-encryption.key-file=" + filepath.Join(c.shared, "master-keys.json")}, o.args...)
	if len(o.zones) > 0 {
		common = append(common, "-ingester.ring.zone-awareness-enabled")
	}
	if o.storeGateways > 0 {
		common = append(common, "-store-gateway.sharding-enabled", "-store-gateway.sharding-ring.heartbeat-period=1s")
	}
	c.common, c.zones, c.env = common, o.zones, o.env
	var all []*node
	for _, ns := range [][]*node{c.ingesters, c.gateways, c.distributors, c.queriers, c.frontends, alerting, c.rulers, c.compactors} {
		all = append(all, ns...)
	}
	for k, n := range all {
		c.setArgs(n, k)
		c.nodes = append(c.nodes, n)
		c.start(n)
	}
	for _, n := range c.nodes {
		testbin.WaitHTTP(t, n.proc, n.url()+"/ready", 2*time.Minute)
	}
	c.waitMembers("ACTIVE", o.ingesters)
	return c
}

func (c *cluster) newNode(role string, k int) *node {
	t := c.t
	return &node{name: fmt.Sprintf("%s-%d", role, k), role: role, dir: t.TempDir(), http: testbin.FreePort(t),
		internal: testbin.FreePort(t), grpc: testbin.FreePort(t), gossip: testbin.FreePort(t)}
}

// setArgs sets the arguments of the k-th node of the cluster.
func (c *cluster) setArgs(n *node, k int) {
	n.args = append([]string{"-target=" + n.role, "-data.dir=" + n.dir, "-server.http-listen-address=" + n.http,
		"-server.internal-listen-address=" + n.internal, "-server.grpc-listen-address=" + n.grpc,
		"-memberlist.bind-port=" + port(n.gossip)}, c.common...)
	if n.role == "ingester" {
		n.args = append(n.args, "-ingester.ring.instance-id="+n.name, "-ingester.ring.instance-addr="+n.grpc)
		if len(c.zones) > 0 {
			n.args = append(n.args, "-ingester.ring.instance-availability-zone="+c.zones[k%len(c.zones)])
		}
	}
	if n.role == "store-gateway" {
		n.args = append(n.args, "-store-gateway.sharding-ring.instance-id="+n.name, "-store-gateway.sharding-ring.instance-addr="+n.grpc)
	}
	if n.role == "query-frontend" {
		var urls []string
		for _, q := range c.queriers {
			urls = append(urls, q.url())
		}
		n.args = append(n.args, "-query-frontend.downstream-url="+strings.Join(urls, ","))
	}
	if n.role == "ruler" || n.role == "compactor" {
		n.args = append(n.args, "-"+n.role+".ring.instance-id="+n.name)
	}
	if n.role == "ruler" && c.am != nil {
		n.args = append(n.args, "-ruler.multitenant-alertmanager-url="+c.am.url())
	}
}

// addIngester starts one more ingester, which joins the running cluster,
// and waits until it is ready (ACTIVE as it sees the ring).
func (c *cluster) addIngester() *node {
	c.t.Helper()
	n := c.newNode("ingester", len(c.ingesters))
	c.setArgs(n, len(c.ingesters))
	c.ingesters = append(c.ingesters, n)
	c.nodes = append(c.nodes, n)
	c.restart(n)
	return n
}

// addNode starts one more node of role (ruler, compactor), which joins the
// running cluster, and waits until it is ready.
func (c *cluster) addNode(role string) *node {
	c.t.Helper()
	var k int
	for _, n := range c.nodes {
		if n.role == role {
			k++
		}
	}
	n := c.newNode(role, k)
	c.setArgs(n, len(c.nodes))
	c.nodes = append(c.nodes, n)
	switch role {
	case "ruler":
		c.rulers = append(c.rulers, n)
	case "compactor":
		c.compactors = append(c.compactors, n)
	}
	c.restart(n)
	return n
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// start starts (or restarts, on its data directory) a node.
func (c *cluster) start(n *node) {
	c.t.Helper()
	n.proc = testbin.Start(c.t, c.bin, c.env, n.args...)
}

// restart starts a stopped node again and waits until it is ready.
func (c *cluster) restart(n *node) {
	c.t.Helper()
	c.start(n)
	testbin.WaitHTTP(c.t, n.proc, n.url()+"/ready", 2*time.Minute)
}

// kill9 kills a node with SIGKILL.
func (n *node) kill9() { n.proc.Kill() }

// stop stops a node with SIGTERM and expects a clean exit.
func (c *cluster) stop(n *node) {
	c.t.Helper()
	if err := n.proc.Stop(time.Minute); err != nil {
		c.t.Fatalf("%s: %v\n%s", n.name, err, n.proc.Output())
	}
}

// running are the nodes whose process is alive.
func (c *cluster) running() []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.proc != nil && !n.proc.Exited() {
			out = append(out, n)
		}
	}
	return out
}

var membersRE = regexp.MustCompile(`(?m)^fluxpulse_ring_members\{name="ingester",state="([A-Za-z]+)"\} (\d+)`)

// members returns what a node's /metrics says of the ingester ring.
func (n *node) members() (map[string]int, error) {
	body, err := get("http://" + n.internal + "/metrics")
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, m := range membersRE.FindAllStringSubmatch(body, -1) {
		v, _ := strconv.Atoi(m[2])
		out[m[1]] = v
	}
	return out, nil
}

// waitMembers waits until every running node sees want ingesters in
// state (ACTIVE, LEAVING, unhealthy, …).
func (c *cluster) waitMembers(state string, want int) {
	c.t.Helper()
	testbin.Eventually(c.t, 2*time.Minute, func() error {
		for _, n := range c.running() {
			m, err := n.members()
			if err != nil {
				return fmt.Errorf("%s: %w", n.name, err)
			}
			if m[state] != want {
				return fmt.Errorf("%s sees %v, want %d %s", n.name, m, want, state)
			}
		}
		return nil
	})
}

// nonSuccess sums, over the distributors, the remote-write answers that
// were not 2xx, by status code.
func (c *cluster) nonSuccess() (map[string]int, error) {
	out := map[string]int{}
	re := regexp.MustCompile(`(?m)^fluxpulse_distributor_requests_total\{code="(\d+)",version="\d"\} (\d+)`)
	for _, d := range c.distributors {
		if d.proc.Exited() {
			continue
		}
		body, err := get("http://" + d.internal + "/metrics")
		if err != nil {
			return nil, err
		}
		for _, m := range re.FindAllStringSubmatch(body, -1) {
			if !strings.HasPrefix(m[1], "2") {
				v, _ := strconv.Atoi(m[2])
				out[m[1]] += v
			}
		}
	}
	return out, nil
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %.300s", url, resp.Status, b)
	}
	return string(b), err
}

// bench runs the load tool against the cluster: pushes spread over the
// distributors, every sample read back from a querier afterwards.
type bench struct {
	proc  *testbin.Process
	start time.Time
}

// started is when the load began.
func (b *bench) started() time.Time { return b.start }

func (c *cluster) startBench(args ...string) *bench {
	c.t.Helper()
	var urls []string
	for _, d := range c.distributors {
		urls = append(urls, d.url())
	}
	a := append([]string{"run", "-url", strings.Join(urls, ","), "-read-url", c.queriers[0].url(), "-query-repeats", "0", "-warmup=false"}, args...)
	bin := testbin.FluxPulse(c.t, "fluxpulse-bench")
	return &bench{proc: testbin.Start(c.t, bin, nil, a...), start: time.Now()}
}

// wait waits for the load and its verification to end and returns what the
// tool printed; it fails the test unless every request was answered 2xx and
// every sample was read back exactly once.
func (b *bench) wait(t *testing.T, timeout time.Duration) string {
	t.Helper()
	testbin.Eventually(t, timeout, func() error {
		if !b.proc.Exited() {
			return fmt.Errorf("the load is still running")
		}
		return nil
	})
	out := b.proc.Output()
	if !strings.Contains(out, "every sample read back") {
		t.Fatalf("the load tool reports failures:\n%s", out)
	}
	return out
}

// signal sends sig to a node's process.
func (n *node) signal(sig syscall.Signal) error { return n.proc.Signal(sig) }
