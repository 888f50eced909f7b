package frontend

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// apiResponse is the envelope of every answer of the Prometheus API.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data,omitempty"`
	ErrorType string          `json:"errorType,omitempty"`
	Error     string          `json:"error,omitempty"`
	Warnings  []string        `json:"warnings,omitempty"`
	Infos     []string        `json:"infos,omitempty"`
}

// matrixData is the data of a range query's answer.
type matrixData struct {
	ResultType string          `json:"resultType"`
	Result     []series        `json:"result"`
	Stats      json.RawMessage `json:"stats,omitempty"`
}

// series is one series of a matrix. The metric and the points are kept as
// the querier wrote them, so that the merged answer has Prometheus's own
// encoding of every value.
type series struct {
	Metric     json.RawMessage   `json:"metric"`
	Values     []json.RawMessage `json:"values,omitempty"`
	Histograms []json.RawMessage `json:"histograms,omitempty"`

	lset labels.Labels // parsed from Metric
}

// parseMatrix reads a successful range query answer.
func parseMatrix(body []byte) (apiResponse, matrixData, error) {
	var resp apiResponse
	var data matrixData
	if err := json.Unmarshal(body, &resp); err != nil {
		return resp, data, fmt.Errorf("decode the querier's answer: %w", err)
	}
	if resp.Status != "success" {
		return resp, data, fmt.Errorf("the querier answered status %q", resp.Status)
	}
	if err := json.Unmarshal(resp.Data, &data); err != nil {
		return resp, data, fmt.Errorf("decode the querier's matrix: %w", err)
	}
	if data.ResultType != "matrix" {
		return resp, data, fmt.Errorf("the querier answered a %s, not a matrix", data.ResultType)
	}
	for k := range data.Result {
		if err := data.Result[k].parseLabels(); err != nil {
			return resp, data, err
		}
	}
	return resp, data, nil
}

func (s *series) parseLabels() error {
	var m map[string]string
	if err := json.Unmarshal(s.Metric, &m); err != nil {
		return fmt.Errorf("decode a series' labels: %w", err)
	}
	s.lset = labels.FromMap(m)
	return nil
}

// mergeSeries joins the series of matrices that cover disjoint ranges, in
// time order, into one matrix sorted by labels as Prometheus sorts it.
func mergeSeries(parts [][]series) []series {
	byKey := map[string]int{}
	var out []series
	for _, part := range parts {
		for _, s := range part {
			key := s.lset.String()
			k, ok := byKey[key]
			if !ok {
				byKey[key] = len(out)
				out = append(out, series{Metric: s.Metric, lset: s.lset})
				k = len(out) - 1
			}
			out[k].Values = append(out[k].Values, s.Values...)
			out[k].Histograms = append(out[k].Histograms, s.Histograms...)
		}
	}
	slices.SortFunc(out, func(a, b series) int { return labels.Compare(a.lset, b.lset) })
	return out
}

// maxAnnotations is how many warnings (and infos) Prometheus puts in one
// answer; the rest it counts in a last line.
const maxAnnotations = 10

// mergeAnnotations returns the distinct annotations of the pieces, capped
// as Prometheus caps them. (When a piece already capped its own, the count
// in the last line is a lower bound.)
func mergeAnnotations(lists [][]string, kind string) []string {
	seen := map[string]bool{}
	var out []string
	omitted := 0
	suffix := " more " + kind + " annotations omitted"
	for _, l := range lists {
		for _, a := range l {
			if n, ok := strings.CutSuffix(a, suffix); ok {
				if c, err := strconv.Atoi(n); err == nil {
					omitted += c
					continue
				}
			}
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	if len(out) > maxAnnotations {
		omitted += len(out) - maxAnnotations
		out = out[:maxAnnotations]
	}
	if omitted > 0 {
		out = append(out, fmt.Sprintf("%d%s", omitted, suffix))
	}
	return out
}

// encodeMatrix writes a successful range query answer in the shape of
// Prometheus's API.
func encodeMatrix(result []series, stats json.RawMessage, warnings, infos []string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"status":"success","data":{"resultType":"matrix","result":[`)
	for k, s := range result {
		if k > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"metric":`)
		b.Write(s.Metric)
		writeRaw(&b, "values", s.Values)
		writeRaw(&b, "histograms", s.Histograms)
		b.WriteByte('}')
	}
	b.WriteByte(']')
	if len(stats) > 0 {
		b.WriteString(`,"stats":`)
		b.Write(stats)
	}
	b.WriteByte('}')
	writeStrings(&b, "warnings", warnings)
	writeStrings(&b, "infos", infos)
	b.WriteByte('}')
	return b.Bytes()
}

func writeRaw(b *bytes.Buffer, name string, vs []json.RawMessage) {
	if len(vs) == 0 {
		return
	}
	b.WriteString(`,"` + name + `":[`)
	for k, v := range vs {
		if k > 0 {
			b.WriteByte(',')
		}
		b.Write(v)
	}
	b.WriteByte(']')
}

func writeStrings(b *bytes.Buffer, name string, ss []string) {
	if len(ss) == 0 {
		return
	}
	enc, _ := json.Marshal(ss) // strings always encode
	b.WriteString(`,"` + name + `":`)
	b.Write(enc)
}

// pointTime returns the timestamp, in milliseconds, of a point [t, v] of
// a matrix.
func pointTime(p json.RawMessage) (int64, error) {
	var pair []json.RawMessage
	if err := json.Unmarshal(p, &pair); err != nil || len(pair) != 2 {
		return 0, fmt.Errorf("a matrix point is not a pair: %.40s", p)
	}
	f, err := strconv.ParseFloat(string(pair[0]), 64)
	if err != nil {
		return 0, fmt.Errorf("a matrix point's timestamp: %w", err)
	}
	return int64(math.Round(f * 1000)), nil
}
