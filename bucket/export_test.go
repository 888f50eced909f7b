package bucket_test

import (
	dto "github.com/prometheus/client_model/go"
)

// MetricValue returns the value of the series of metric whose operation
// label is op (any series when op is empty): a counter's value or a
// histogram's sample count.
func MetricValue(mfs []*dto.MetricFamily, metric, op string) float64 {
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if op != "" && (lp.GetName() != "operation" || lp.GetValue() != op) {
					continue
				}
				if h := m.GetHistogram(); h != nil {
					return float64(h.GetSampleCount())
				}
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}
