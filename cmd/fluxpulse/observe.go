package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/distributor"
	"github.com/fluxpulse/fluxpulse/querier"
	"github.com/fluxpulse/fluxpulse/runtimeconfig"
	"github.com/fluxpulse/fluxpulse/tenantauth"
	"github.com/fluxpulse/fluxpulse/usage"
)

// auditCLI records an action of a CLI command in the audit log of the data
// directory, as the person running it, sealed with keys from keyFile ("":
// the data directory's).
func auditCLI(dataDir, keyFile, action, tenant string) {
	l, err := audit.OpenWithOptions(filepath.Join(dataDir, "audit", "audit.log"), audit.Options{Keys: cliAuditKeys(dataDir, keyFile)}, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "warning: action not recorded in the audit log:", err)
		return
	}
	l.Log(audit.Entry{Actor: cliActor(), Tenant: tenant, Action: action, Target: tenant, Outcome: audit.OutcomeSuccess})
	if err := l.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "warning: close audit log:", err)
	}
}

// observers turn what the roles report into audit entries and usage
// figures.
type observers struct {
	audit *audit.Logger
	usage *usage.Recorder

	mu         sync.Mutex
	failMinute time.Time
	failLogged int
	failQuiet  int
}

// maxAuthFailuresPerMinute bounds the audit entries of refused requests: a
// flood of bad credentials must not fill the disk. The rest of a minute is
// counted and summarized in one entry.
const maxAuthFailuresPerMinute = 120

// maxQueryText bounds the query text kept in an audit entry.
const maxQueryText = 4096

func (o *observers) push(r *http.Request, tenant string, rec distributor.Record) {
	res := rec.Result
	o.audit.RecordPush(tenant, tenantauth.Actor(r.Context()), audit.PushStats{
		Samples: int64(res.Samples), Histograms: int64(res.Histograms), Exemplars: int64(res.Exemplars),
		RejectedSamples: int64(res.RejectedSamples), Bytes: int64(rec.Bytes), StatusCode: rec.Status})
	o.usage.Add(tenant, usage.SamplesReceived, int64(rec.Samples))
	o.usage.Add(tenant, usage.HistogramsReceived, int64(rec.Histograms))
	o.usage.Add(tenant, usage.ExemplarsReceived, int64(rec.Exemplars))
	o.usage.Add(tenant, usage.BytesReceived, int64(rec.Bytes))
	rejected := res.RejectedSamples
	if rec.Status == http.StatusTooManyRequests || rec.Status >= 500 {
		rejected = rec.Samples + rec.Histograms // nothing of it was stored
	}
	o.usage.Add(tenant, usage.SamplesRejected, int64(rejected))
}

// queryAction names the kind of read for the audit log.
func queryAction(path string) string {
	switch {
	case strings.HasSuffix(path, "/query"), strings.HasSuffix(path, "/query_range"):
		return audit.ActionQuery
	case strings.HasSuffix(path, "/query_exemplars"):
		return "query.exemplars"
	case strings.HasSuffix(path, "/export"):
		return audit.ActionExport
	case strings.HasSuffix(path, "/read"):
		return "query.remote-read"
	case strings.HasSuffix(path, "/format_query"), strings.HasSuffix(path, "/parse_query"):
		return "query.parse"
	}
	return audit.ActionQuerySeries // series, labels, label values, metadata
}

func (o *observers) query(r *http.Request, rec querier.Record) {
	text := rec.Query
	if len(text) > maxQueryText {
		text = text[:maxQueryText] + "…"
	}
	outcome := audit.OutcomeSuccess
	if rec.Status >= 400 {
		outcome = audit.OutcomeFailure
	}
	var series, samples int64
	for _, t := range rec.Tenants {
		ts := rec.Stats.Tenant(t)
		if ts == nil {
			continue
		}
		o.usage.Add(t, usage.Queries, 1)
		o.usage.Add(t, usage.SeriesQueried, ts.Series.Load())
		o.usage.Add(t, usage.SamplesQueried, ts.Samples.Load())
		series += ts.Series.Load()
		samples += ts.Samples.Load()
	}
	o.audit.Log(audit.Entry{Actor: rec.Actor, Tenant: strings.Join(rec.Tenants, "|"), Action: queryAction(rec.Path),
		Target: text, Outcome: outcome, Details: map[string]any{
			"path": rec.Path, "status": rec.Status, "result_bytes": rec.Bytes, "series": series, "samples": samples,
			"duration_seconds": rec.Duration.Seconds()}})
}

func (o *observers) authFailure(r *http.Request, f tenantauth.Failure) {
	now := time.Now()
	o.mu.Lock()
	if minute := now.Truncate(time.Minute); !minute.Equal(o.failMinute) {
		if o.failQuiet > 0 {
			o.audit.Log(audit.Entry{Actor: audit.ActorSystem, Action: audit.ActionAuthFailure, Outcome: audit.OutcomeDenied,
				Details: map[string]any{"suppressed": o.failQuiet, "minute": o.failMinute.UTC().Format(time.RFC3339)}})
		}
		o.failMinute, o.failLogged, o.failQuiet = minute, 0, 0
	}
	if o.failLogged >= maxAuthFailuresPerMinute {
		o.failQuiet++
		o.mu.Unlock()
		return
	}
	o.failLogged++
	o.mu.Unlock()
	tenant := f.Tenant
	if tenantauth.ValidateID(strings.Split(tenant, "|")[0]) != nil {
		tenant = "" // never copy an arbitrary header value into the log as a tenant
	}
	o.audit.Log(audit.Entry{Actor: f.Actor, Tenant: tenant, Action: audit.ActionAuthFailure, Target: r.Method + " " + r.URL.Path,
		Outcome: audit.OutcomeDenied, Details: map[string]any{"status": f.Status, "reason": f.Reason, "scope": string(f.Scope), "remote": r.RemoteAddr}})
}

func (o *observers) runtimeChange(ch runtimeconfig.Change) {
	o.audit.Log(audit.Entry{Actor: "runtime-file", Tenant: ch.Tenant, Action: ch.Action, Target: ch.Target, Outcome: audit.OutcomeSuccess})
}

func (o *observers) admin(r *http.Request, action, tenant, outcome string, details map[string]any) {
	o.audit.Log(audit.Entry{Actor: tenantauth.Actor(r.Context()), Tenant: tenant, Action: action, Target: r.Method + " " + r.URL.Path,
		Outcome: outcome, Details: details})
}

// allowedUsage lets an operator token see every tenant's usage and any
// other admin token its own tenants'.
func allowedUsage(r *http.Request) ([]string, bool) {
	if tenantauth.IsOperator(r.Context()) {
		if ts, err := tenantauth.Tenants(r.Context()); err == nil {
			return ts, false
		}
		return nil, true
	}
	ts, _ := tenantauth.Tenants(r.Context())
	return ts, false
}

// storedBytes returns the bytes each tenant keeps in the bucket, as stored.
// A tenant whose objects could not all be listed is left out rather than
// reported short, and the failure is logged. It lists every object: it runs
// when a usage hour closes, not per request.
func storedBytes(ctx context.Context, raw bucket.Bucket, tenants []string, logger *slog.Logger) map[string]int64 {
	out := make(map[string]int64, len(tenants))
	for _, t := range tenants {
		var n int64
		err := raw.Iter(ctx, t, bucket.IterOptions{Recursive: true}, func(name string) error {
			a, err := raw.Attributes(ctx, name)
			if errors.Is(err, bucket.ErrNotFound) {
				return nil // deleted since it was listed
			}
			if err != nil {
				return err
			}
			n += a.Size
			return nil
		})
		if err != nil {
			logger.Warn("stored bytes not reported: listing the bucket failed", "tenant", t, "err", err)
			continue
		}
		out[t] = n
	}
	return out
}
