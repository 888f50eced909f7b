package main

import (
	"encoding/json"
	"testing"
	"time"
)

func TestGrafanaStep(t *testing.T) {
	for _, tc := range []struct {
		span time.Duration
		want time.Duration
	}{
		{7 * 24 * time.Hour, 10 * time.Minute},
		{24 * time.Hour, time.Minute},
		{time.Hour, 5 * time.Second},
		{12 * time.Hour, 30 * time.Second},
	} {
		if got := grafanaStep(tc.span, 1000); got != tc.want {
			t.Errorf("grafanaStep(%s) = %s, want %s", tc.span, got, tc.want)
		}
	}
	if got := promDuration(11 * time.Minute); got != "11m" {
		t.Errorf("promDuration(11m) = %s", got)
	}
}

func TestSameMatrix(t *testing.T) {
	raw := func(s ...string) []json.RawMessage {
		var out []json.RawMessage
		for _, x := range s {
			out = append(out, json.RawMessage(x))
		}
		return out
	}
	a := raw(`{"metric":{"i":"a"},"values":[[1,"1"],[2,"2"]]}`, `{"metric":{"i":"b"},"values":[[1,"3"]]}`)
	for _, tc := range []struct {
		name    string
		b       []json.RawMessage
		byValue bool
		same    bool
	}{
		{"equal, other order", raw(`{"metric":{"i":"b"},"values":[[1,"3"]]}`, `{"metric":{"i":"a"},"values":[[1,"1"],[2,"2.0000000000001"]]}`), false, true},
		{"other value", raw(`{"metric":{"i":"b"},"values":[[1,"3"]]}`, `{"metric":{"i":"a"},"values":[[1,"1"],[2,"2.1"]]}`), false, false},
		{"missing series", raw(`{"metric":{"i":"a"},"values":[[1,"1"],[2,"2"]]}`), false, false},
		{"ties broken otherwise", raw(`{"metric":{"i":"c"},"values":[[1,"3"],[2,"2"]]}`, `{"metric":{"i":"b"},"values":[[1,"1"]]}`), true, true},
		{"other labels", raw(`{"metric":{"i":"c"},"values":[[1,"3"],[2,"2"]]}`, `{"metric":{"i":"b"},"values":[[1,"1"]]}`), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := sameMatrix(a, tc.b, tc.byValue); (err == nil) != tc.same {
				t.Fatalf("sameMatrix: %v, want same=%v", err, tc.same)
			}
		})
	}
}
