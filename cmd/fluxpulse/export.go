package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const exportUsage = `usage: fluxpulse export -url URL -token-file FILE -match SELECTOR [-match …] -o FILE [flags]

  Writes a tenant's series to FILE through the server's /api/v1/export, in
  pages of -series-per-request series, with a progress bar (series and
  bytes) on a terminal and a line a page otherwise. Run again with the same
  flags and -o after an interruption, it resumes after the last complete
  page (FILE.progress records it; it is removed once the export is
  complete). Formats: jsonl (VictoriaMetrics' export format), openmetrics
  (for promtool tsdb create-blocks-from openmetrics) and csv.`

// exportJob is what one export writes: every parameter that must be the
// same when it resumes.
type exportJob struct {
	URL     string   `json:"url"`
	Tenant  string   `json:"tenant,omitempty"`
	Match   []string `json:"match"`
	Start   string   `json:"start,omitempty"`
	End     string   `json:"end,omitempty"`
	Format  string   `json:"format"`
	Columns string   `json:"columns,omitempty"`
}

// exportProgress is FILE.progress: the job and how far it got.
type exportProgress struct {
	Job    exportJob `json:"job"`
	After  string    `json:"after"`  // the last series written whole
	Bytes  int64     `json:"bytes"`  // FILE's size after it
	Series int       `json:"series"` // series written so far
	Done   bool      `json:"done"`   // the last page is written
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runExport(args []string, stdout, stderr io.Writer) error {
	var (
		job       exportJob
		tokenFile string
		out       string
		perPage   int
		match     multiFlag
	)
	fs := flag.NewFlagSet("fluxpulse export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, exportUsage); fs.PrintDefaults() }
	fs.StringVar(&job.URL, "url", "", "The FluxPulse server, e.g. https://fluxpulse.example.com:9009.")
	fs.StringVar(&tokenFile, "token-file", "", "File holding a token with the read scope; empty sends none (a server in -auth.mode=header).")
	fs.StringVar(&job.Tenant, "tenant", "", "Tenant to export (X-Scope-OrgID); empty: the token's own.")
	fs.Var(&match, "match", "Series selector to export, e.g. '{__name__=~\".+\"}' for everything; repeatable.")
	fs.StringVar(&job.Start, "start", "", "Start of the exported range, RFC 3339 or Unix seconds (default: the oldest sample).")
	fs.StringVar(&job.End, "end", "", "End of the exported range (default: the newest sample).")
	fs.StringVar(&job.Format, "format", "jsonl", "jsonl, openmetrics or csv.")
	fs.StringVar(&job.Columns, "columns", "", "csv: the label columns, comma-separated (default: every label name of the exported series).")
	fs.StringVar(&out, "o", "", "Output file.")
	fs.IntVar(&perPage, "series-per-request", 1000, "Series per request: an interrupted export resumes after the last complete one.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	job.Match = match
	if err := job.check(out, perPage, fs.NArg()); err != nil {
		return err
	}
	token := ""
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return fmt.Errorf("export: -token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &exporter{job: job, token: token, out: out, perPage: perPage, client: &http.Client{}, progress: newProgressBar(stderr)}
	return e.run(ctx, stdout)
}

func (j *exportJob) check(out string, perPage, extra int) error {
	switch {
	case extra > 0:
		return errors.New("export: unexpected arguments; " + exportUsage)
	case j.URL == "":
		return errors.New("export: -url must be set")
	case len(j.Match) == 0:
		return errors.New(`export: -match must be set (-match '{__name__=~".+"}' exports everything)`)
	case out == "":
		return errors.New("export: -o must be set")
	case perPage <= 0:
		return fmt.Errorf("export: -series-per-request must be positive, got %d", perPage)
	case !slices.Contains([]string{"jsonl", "openmetrics", "csv"}, j.Format):
		return fmt.Errorf("export: -format must be jsonl, openmetrics or csv, got %q", j.Format)
	case j.Columns != "" && j.Format != "csv":
		return errors.New("export: -columns applies to -format csv only")
	}
	j.URL = strings.TrimSuffix(j.URL, "/")
	return nil
}

// exporter runs one export.
type exporter struct {
	job      exportJob
	token    string
	out      string
	perPage  int
	client   *http.Client
	progress *progressBar
}

func (e *exporter) run(ctx context.Context, stdout io.Writer) error {
	st, f, err := e.open()
	if err != nil {
		return err
	}
	defer f.Close()
	total := e.countSeries(ctx)
	if e.job.Format == "csv" && e.job.Columns == "" && st.Series == 0 {
		if e.job.Columns, err = e.labelNames(ctx); err != nil {
			return err
		}
		st.Job = e.job
	}
	e.progress.start(st.Series, total, st.Bytes)
	for !st.Done {
		if err := e.page(ctx, f, &st); err != nil {
			e.progress.stop()
			return fmt.Errorf("export: %w (%d series written; run the same command again to resume)", err, st.Series)
		}
		e.progress.page(st.Series, st.Bytes)
	}
	e.progress.stop()
	if err := os.Remove(e.out + ".progress"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	fmt.Fprintf(stdout, "exported %d series, %d bytes, to %s\n", st.Series, st.Bytes, e.out)
	return nil
}

// open opens the output for a new export, or for resuming the one
// FILE.progress describes (cut back to its last complete page).
func (e *exporter) open() (exportProgress, *os.File, error) {
	st := exportProgress{Job: e.job}
	b, err := os.ReadFile(e.out + ".progress")
	switch {
	case errors.Is(err, os.ErrNotExist):
		f, err := os.OpenFile(e.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return st, nil, fmt.Errorf("export: %s exists and has no %s.progress, so it is not an unfinished export: remove it or choose another -o", e.out, e.out)
		}
		return st, f, err
	case err != nil:
		return st, nil, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, nil, fmt.Errorf("export: %s.progress: %w", e.out, err)
	}
	want := e.job
	if want.Columns == "" {
		want.Columns = st.Job.Columns // chosen by the first run
	}
	if !reflectEqualJob(st.Job, want) {
		return st, nil, fmt.Errorf("export: %s is an unfinished export with other flags (%+v); run it with those, or choose another -o", e.out, st.Job)
	}
	e.job = st.Job
	f, err := os.OpenFile(e.out, os.O_WRONLY, 0o600)
	if err != nil {
		return st, nil, err
	}
	if err := f.Truncate(st.Bytes); err != nil {
		f.Close()
		return st, nil, err
	}
	if _, err := f.Seek(st.Bytes, io.SeekStart); err != nil {
		f.Close()
		return st, nil, err
	}
	return st, f, nil
}

func reflectEqualJob(a, b exportJob) bool {
	return a.URL == b.URL && a.Tenant == b.Tenant && slices.Equal(a.Match, b.Match) && a.Start == b.Start && a.End == b.End &&
		a.Format == b.Format && a.Columns == b.Columns
}

// params are the query parameters every request of the job shares.
func (e *exporter) params() url.Values {
	v := url.Values{"match[]": e.job.Match}
	for k, s := range map[string]string{"start": e.job.Start, "end": e.job.End} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

func (e *exporter) get(ctx context.Context, path string, v url.Values) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.job.URL+path+"?"+v.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	if e.job.Tenant != "" {
		req.Header.Set("X-Scope-OrgID", e.job.Tenant)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

// countSeries asks how many series the job exports, for the progress bar;
// 0 when the server does not say.
func (e *exporter) countSeries(ctx context.Context) int {
	resp, err := e.get(ctx, "/api/v1/series", e.params())
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var r struct{ Data []json.RawMessage }
	if json.NewDecoder(resp.Body).Decode(&r) != nil {
		return 0
	}
	return len(r.Data)
}

// labelNames are the default CSV columns: every label name of the job's
// series, fixed when the export starts so that every page has the same.
func (e *exporter) labelNames(ctx context.Context) (string, error) {
	resp, err := e.get(ctx, "/api/v1/labels", e.params())
	if err != nil {
		return "", fmt.Errorf("export: the label names for the CSV columns: %w", err)
	}
	defer resp.Body.Close()
	var r struct{ Data []string }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return "", fmt.Errorf("export: the label names for the CSV columns: %w", err)
	}
	return strings.Join(r.Data, ","), nil
}

// page exports the next page into f and records it in FILE.progress once
// it is on disk whole.
func (e *exporter) page(ctx context.Context, f *os.File, st *exportProgress) error {
	v := e.params()
	v.Set("format", e.job.Format)
	v.Set("limit", strconv.Itoa(e.perPage))
	if st.After != "" {
		v.Set("after", st.After)
	}
	if e.job.Format == "csv" {
		v.Set("columns", e.job.Columns)
	}
	resp, err := e.get(ctx, "/api/v1/export", v)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.Copy(f, io.TeeReader(resp.Body, e.progress.bytesFrom(st.Bytes)))
	if err != nil {
		return fmt.Errorf("read the export: %w", err)
	}
	if status := resp.Trailer.Get("X-FluxPulse-Export-Status"); status != "complete" {
		return fmt.Errorf("the server ended the export with %q", status)
	}
	series, err := strconv.Atoi(resp.Trailer.Get("X-FluxPulse-Export-Series"))
	if err != nil {
		return fmt.Errorf("the server sent no series count: %w", err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	last, _ := url.QueryUnescape(resp.Trailer.Get("X-FluxPulse-Export-Last"))
	if series > 0 {
		st.After = last
	}
	st.Bytes += n
	st.Series += series
	st.Done = resp.Trailer.Get("X-FluxPulse-Export-More") != "true"
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return writeFileAtomic(e.out+".progress", b)
}

// writeFileAtomic writes b to path through a temporary file renamed over
// it.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// progressBar shows how far an export got: a bar redrawn in place on a
// terminal, a line a page otherwise.
type progressBar struct {
	w        io.Writer
	terminal bool
	total    int
	series   int
	bytes    int64
	last     time.Time
}

func newProgressBar(w io.Writer) *progressBar {
	p := &progressBar{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *progressBar) start(series, total int, bytes int64) {
	p.series, p.total, p.bytes = series, total, bytes
	if series > 0 && !p.terminal {
		fmt.Fprintf(p.w, "resuming after %d series (%d bytes)\n", series, bytes)
	}
	p.draw(true)
}

// bytesFrom returns a writer that counts the bytes of a page as they
// arrive, from the given total on.
func (p *progressBar) bytesFrom(base int64) io.Writer {
	return writerFunc(func(b []byte) (int, error) {
		base += int64(len(b))
		p.bytes = base
		if p.terminal && time.Since(p.last) > 200*time.Millisecond {
			p.draw(false)
		}
		return len(b), nil
	})
}

func (p *progressBar) page(series int, bytes int64) {
	p.series, p.bytes = series, bytes
	p.draw(!p.terminal)
}

func (p *progressBar) stop() {
	if p.terminal {
		fmt.Fprintln(p.w)
	}
}

func (p *progressBar) draw(line bool) {
	p.last = time.Now()
	mib := float64(p.bytes) / (1 << 20)
	if !p.terminal {
		if line {
			fmt.Fprintf(p.w, "exported %d of %s series, %.1f MiB\n", p.series, p.totalText(), mib)
		}
		return
	}
	const width = 30
	done := 0
	if p.total > 0 {
		done = min(width, p.series*width/p.total)
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%s series  %.1f MiB ", strings.Repeat("=", done), strings.Repeat(" ", width-done), p.series, p.totalText(), mib)
}

func (p *progressBar) totalText() string {
	if p.total == 0 {
		return "?"
	}
	return strconv.Itoa(p.total)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
