package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// dashboardQueries are the panels of a node_exporter dashboard.
var dashboardQueries = []struct{ name, expr string }{
	{"cpu busy by host", `sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[1m]))`},
	{"cpu by mode", `avg by (instance, mode) (rate(node_cpu_seconds_total[1m]))`},
	{"memory used", `1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes`},
	{"network in", `sum by (instance, device) (rate(node_network_receive_bytes_total[1m]))`},
	{"disk busy top 10", `topk(10, rate(node_disk_io_time_seconds_total[1m]))`},
	{"fullest filesystem", `max by (instance) (1 - node_filesystem_avail_bytes / node_filesystem_size_bytes)`},
	{"load", `node_load1`},
	{"cpus per host", `count by (instance) (node_cpu_seconds_total{mode="idle"})`},
}

// queryStats are the latencies of each dashboard query.
type queryStats struct {
	names []string
	lat   map[string][]time.Duration
	total []time.Duration // a whole dashboard refresh
	err   error
}

// runQueries runs every dashboard query as a range query over the pushed
// data, repeats times, as tenant.
func (p *plan) runQueries(client *http.Client, apiURL, tenant string, repeats int) queryStats {
	st := queryStats{lat: map[string][]time.Duration{}}
	start := time.UnixMilli(p.base)
	end := time.UnixMilli(p.base + int64(p.cfg.Rounds-1)*p.cfg.Interval.Milliseconds())
	step := max(p.cfg.Interval, (end.Sub(start) / 120).Truncate(time.Second))
	for range repeats {
		t0 := time.Now()
		for _, q := range dashboardQueries {
			v := url.Values{"query": {q.expr}, "start": {unix(start)}, "end": {unix(end)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
			q0 := time.Now()
			if err := p.get(client, apiURL+"/api/v1/query_range", v, tenant); err != nil && st.err == nil {
				st.err = fmt.Errorf("%s: %w", q.name, err)
			}
			st.lat[q.name] = append(st.lat[q.name], time.Since(q0))
		}
		st.total = append(st.total, time.Since(t0))
	}
	for _, q := range dashboardQueries {
		st.names = append(st.names, q.name)
	}
	return st
}

func unix(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64) }

func (p *plan) get(client *http.Client, u string, v url.Values, tenant string) error {
	res, err := queryRange(client, u, v, p.cfg.Auth, tenant)
	if err == nil && len(res) == 0 {
		err = fmt.Errorf("empty result")
	}
	return err
}

// queryRange asks a Prometheus query API and returns the series of its
// result.
func queryRange(client *http.Client, u string, v url.Values, auth, tenant string) ([]json.RawMessage, error) {
	req, err := http.NewRequest(http.MethodGet, u+"?"+v.Encode(), nil)
	if err != nil {
		return nil, err
	}
	setAuth(req, auth, tenant)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Status != "success" {
		return nil, fmt.Errorf("%s: %.300s", resp.Status, b)
	}
	return r.Data.Result, nil
}
