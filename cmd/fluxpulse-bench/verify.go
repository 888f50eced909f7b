package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/fluxpulse/fluxpulse/loadgen"
)

// verify reads every pushed series back over remote read and checks that
// each sample is there with its value, and nothing else is.
func (p *plan) verify(client *http.Client, readURL string) error {
	for _, tp := range p.tenants {
		want := map[string]map[int64]float64{} // labels -> ts -> value
		for r := range p.cfg.Rounds {
			for i, ls := range tp.series[p.cfg.generation(r)] {
				k := ls.String()
				if want[k] == nil {
					want[k] = map[int64]float64{}
				}
				want[k][p.base+int64(r)*p.cfg.Interval.Milliseconds()] = loadgen.Value(i, r)
			}
		}
		groups := [][]*prompb.LabelMatcher{{{Type: prompb.LabelMatcher_EQ, Name: "job", Value: "node"}}}
		if len(tp.series[0]) > 5000 { // read large tenants one metric at a time
			groups = nil
			var names []string
			for _, ls := range tp.series[0] {
				if n := ls.Get(labels.MetricName); !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
			for _, n := range names {
				groups = append(groups, []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: n}})
			}
		}
		seen := 0
		for _, ms := range groups {
			n, err := p.readCheck(client, readURL, tp.name, ms, want)
			if err != nil {
				return fmt.Errorf("tenant %s: %w", tp.name, err)
			}
			seen += n
		}
		if seen != len(want) {
			return fmt.Errorf("tenant %s: %d series read back, %d pushed", tp.name, seen, len(want))
		}
	}
	return nil
}

func (p *plan) readCheck(client *http.Client, readURL, tenant string, ms []*prompb.LabelMatcher, want map[string]map[int64]float64) (int, error) {
	end := p.base + int64(p.cfg.Rounds)*p.cfg.Interval.Milliseconds()
	b, err := proto.Marshal(&prompb.ReadRequest{Queries: []*prompb.Query{{StartTimestampMs: p.base, EndTimestampMs: end, Matchers: ms}}})
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequest(http.MethodPost, readURL, bytes.NewReader(snappy.Encode(nil, b)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	setAuth(req, p.cfg.Auth, tenant)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("remote read: %s: %.200s", resp.Status, body)
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return 0, err
	}
	var rr prompb.ReadResponse
	if err := proto.Unmarshal(raw, &rr); err != nil {
		return 0, err
	}
	var sb labels.ScratchBuilder
	n := 0
	for _, ts := range rr.Results[0].Timeseries {
		k := ts.ToLabels(&sb, nil).String()
		w, ok := want[k]
		if !ok {
			return n, fmt.Errorf("series %s was never pushed", k)
		}
		if len(ts.Samples) != len(w) {
			return n, fmt.Errorf("series %s: %d samples read back, %d pushed", k, len(ts.Samples), len(w))
		}
		for _, s := range ts.Samples {
			if v, ok := w[s.Timestamp]; !ok || v != s.Value {
				return n, fmt.Errorf("series %s at %d: %v read back, %v pushed", k, s.Timestamp, s.Value, v)
			}
		}
		n++
	}
	return n, nil
}
