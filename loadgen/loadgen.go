// Package loadgen generates realistic node_exporter-like series for
// benchmarks and the load tool: per-core CPU, memory, disks, filesystems and
// network interfaces of a fleet of hosts, with values that evolve like real
// counters and gauges, encoded as remote-write 1.0 or 2.0 requests.
package loadgen

import (
	"fmt"
	"math"
	"slices"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// Host describes the shape of one simulated machine.
type Host struct {
	CPUs, Disks, Filesystems, Interfaces int
}

// DefaultHost is a typical small server: 129 series.
var DefaultHost = Host{CPUs: 8, Disks: 2, Filesystems: 3, Interfaces: 2}

// Series returns the label sets of one host, sorted by name as remote write
// requires. Each label set is distinct across hosts through the instance
// label.
func (h Host) Series(instance string) []labels.Labels {
	var out []labels.Labels
	add := func(kv ...string) {
		kv = append(kv, "instance", instance, "job", "node")
		out = append(out, labels.FromStrings(kv...))
	}
	for c := range h.CPUs {
		for _, mode := range []string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"} {
			add("__name__", "node_cpu_seconds_total", "cpu", fmt.Sprint(c), "mode", mode)
		}
	}
	for _, m := range []string{"MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapTotal", "SwapFree", "Active", "Inactive", "Dirty"} {
		add("__name__", "node_memory_"+m+"_bytes")
	}
	for d := range h.Disks {
		dev := fmt.Sprintf("sd%c", 'a'+d)
		for _, m := range []string{"read_bytes_total", "written_bytes_total", "reads_completed_total", "writes_completed_total", "io_time_seconds_total", "read_time_seconds_total", "write_time_seconds_total"} {
			add("__name__", "node_disk_"+m, "device", dev)
		}
	}
	for f := range h.Filesystems {
		mp := []string{"/", "/var", "/home", "/data", "/srv"}[f%5]
		for _, m := range []string{"avail_bytes", "free_bytes", "size_bytes", "files", "files_free"} {
			add("__name__", "node_filesystem_"+m, "device", fmt.Sprintf("/dev/vd%c%d", 'a'+f, f+1), "fstype", "ext4", "mountpoint", mp)
		}
	}
	for n := range h.Interfaces {
		dev := fmt.Sprintf("eth%d", n)
		for _, m := range []string{"receive_bytes_total", "transmit_bytes_total", "receive_packets_total", "transmit_packets_total", "receive_errs_total", "transmit_errs_total", "receive_drop_total", "transmit_drop_total"} {
			add("__name__", "node_network_"+m, "device", dev)
		}
	}
	for _, m := range []string{"node_load1", "node_load5", "node_load15", "node_boot_time_seconds", "node_time_seconds", "node_procs_running", "node_procs_blocked", "node_context_switches_total", "node_intr_total", "node_forks_total"} {
		add("__name__", m)
	}
	for i := range out {
		out[i] = sortedCopy(out[i])
	}
	return out
}

func sortedCopy(ls labels.Labels) labels.Labels {
	b := labels.NewScratchBuilder(ls.Len())
	ls.Range(func(l labels.Label) { b.Add(l.Name, l.Value) })
	b.Sort()
	return b.Labels()
}

// Fleet is the series of many hosts.
func Fleet(h Host, hosts int, prefix string) []labels.Labels {
	var out []labels.Labels
	for i := range hosts {
		out = append(out, h.Series(fmt.Sprintf("%s-%05d:9100", prefix, i))...)
	}
	return out
}

// Value is the value of series i at round r: counters increase, gauges
// wander, all deterministic so that a verifier can recompute them.
func Value(i, r int) float64 {
	return float64(i%1000)*10 + float64(r)*float64(1+i%7) + math.Mod(float64(i*r), 3)/4
}

// EncodeV1 encodes one sample per series at timestamp ts for round r as a
// snappy-compressed remote-write 1.0 request.
func EncodeV1(series []labels.Labels, first, r int, ts int64) []byte {
	req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, len(series))}
	for k, ls := range series {
		req.Timeseries[k] = prompb.TimeSeries{
			Labels:  prompb.FromLabels(ls, nil),
			Samples: []prompb.Sample{{Value: Value(first+k, r), Timestamp: ts}},
		}
	}
	b, err := proto.Marshal(&req)
	if err != nil {
		panic("BUG: marshal generated request: " + err.Error())
	}
	return snappy.Encode(nil, b)
}

// EncodeV2 is EncodeV1 for remote write 2.0.
func EncodeV2(series []labels.Labels, first, r int, ts int64) []byte {
	st := writev2.NewSymbolTable()
	req := writev2.Request{Timeseries: make([]writev2.TimeSeries, len(series))}
	for k, ls := range series {
		req.Timeseries[k] = writev2.TimeSeries{
			LabelsRefs: st.SymbolizeLabels(ls, nil),
			Samples:    []writev2.Sample{{Value: Value(first+k, r), Timestamp: ts}},
		}
	}
	req.Symbols = slices.Clone(st.Symbols())
	b, err := proto.Marshal(&req)
	if err != nil {
		panic("BUG: marshal generated request: " + err.Error())
	}
	return snappy.Encode(nil, b)
}

// EncodeRounds encodes series entry j with the value of series
// first+j%perRound at round rounds[j], timestamp base+rounds[j]*interval,
// as a snappy-compressed remote-write request of the given protocol (1 or
// 2). A series may appear once per round, rounds in increasing order.
func EncodeRounds(series []labels.Labels, first, perRound int, rounds []int, base, interval int64, protocol int) []byte {
	var (
		b   []byte
		err error
	)
	if protocol == 2 {
		st := writev2.NewSymbolTable()
		req := writev2.Request{Timeseries: make([]writev2.TimeSeries, len(series))}
		for j, ls := range series {
			req.Timeseries[j] = writev2.TimeSeries{
				LabelsRefs: st.SymbolizeLabels(ls, nil),
				Samples:    []writev2.Sample{{Value: Value(first+j%perRound, rounds[j]), Timestamp: base + int64(rounds[j])*interval}},
			}
		}
		req.Symbols = st.Symbols()
		b, err = proto.Marshal(&req)
	} else {
		req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, len(series))}
		for j, ls := range series {
			req.Timeseries[j] = prompb.TimeSeries{
				Labels:  prompb.FromLabels(ls, nil),
				Samples: []prompb.Sample{{Value: Value(first+j%perRound, rounds[j]), Timestamp: base + int64(rounds[j])*interval}},
			}
		}
		b, err = proto.Marshal(&req)
	}
	if err != nil {
		panic("BUG: marshal generated request: " + err.Error())
	}
	return snappy.Encode(nil, b)
}

// EncodeSpan encodes rounds r0 to r1-1 of every series (series k is
// series first+k of the load), one timeseries entry per series holding its
// samples in time order, timestamp base+r*interval, as a snappy-compressed
// remote-write 1.0 request: the shape of a sender catching up, each label
// set sent once for many samples.
func EncodeSpan(series []labels.Labels, first, r0, r1 int, base, interval int64) []byte {
	req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, len(series))}
	for k, ls := range series {
		ss := make([]prompb.Sample, 0, r1-r0)
		for r := r0; r < r1; r++ {
			ss = append(ss, prompb.Sample{Value: Value(first+k, r), Timestamp: base + int64(r)*interval})
		}
		req.Timeseries[k] = prompb.TimeSeries{Labels: prompb.FromLabels(ls, nil), Samples: ss}
	}
	b, err := proto.Marshal(&req)
	if err != nil {
		panic("BUG: marshal generated request: " + err.Error())
	}
	return snappy.Encode(nil, b)
}
