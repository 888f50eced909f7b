// Package testbin provides the real servers that FluxPulse's tests run
// against: Prometheus (and its promtool), Alertmanager, amtool and versitygw (S3) at pinned versions,
// and the FluxPulse binaries built from this module. Tool binaries are built
// once per machine with `go install` into a cache directory
// ($FLUXPULSE_TESTBIN, default ~/.cache/fluxpulse-testbin) and reused; a
// file lock keeps parallel test processes from building the same tool twice.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Tool is an external binary at a pinned version.
type Tool struct {
	Name    string // binary name
	Package string // package path to go install
	Version string
	// prepare, if set, builds the tool itself (for modules whose release
	// cannot be built by plain go install).
	prepare func(dir string) error
}

const alertmanagerVersion = "v0.35.0"

// The pinned tools.
var (
	Prometheus   = Tool{Name: "prometheus", Package: "github.com/prometheus/prometheus/cmd/prometheus", Version: "v0.316.0"}
	Alertmanager = Tool{Name: "alertmanager", Package: "github.com/prometheus/alertmanager/cmd/alertmanager", Version: alertmanagerVersion, prepare: buildAlertmanager}
	Versitygw    = Tool{Name: "versitygw", Package: "github.com/versity/versitygw/cmd/versitygw", Version: "v1.8.0"}
	Amtool       = Tool{Name: "amtool", Package: "github.com/prometheus/alertmanager/cmd/amtool", Version: alertmanagerVersion}
	// Promtool turns an OpenMetrics export into blocks (#14).
	Promtool = Tool{Name: "promtool", Package: "github.com/prometheus/prometheus/cmd/promtool", Version: "v0.316.0"}
)

// All lists every pinned tool.
var All = []Tool{Prometheus, Alertmanager, Versitygw, Amtool, Promtool}

// CacheDir is where built tools are kept.
func CacheDir() (string, error) {
	if d := os.Getenv("FLUXPULSE_TESTBIN"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "fluxpulse-testbin"), nil
}

// Path returns the tool's binary, building it first if needed.
func (tl Tool) Path(t testing.TB) string {
	t.Helper()
	p, err := tl.Install()
	if err != nil {
		t.Fatalf("%s %s is needed for this test and could not be built: %v", tl.Name, tl.Version, err)
	}
	return p
}

// Install builds the tool unless it is cached and returns its path.
func (tl Tool) Install() (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, tl.Name+"-"+tl.Version)
	bin := filepath.Join(dir, tl.Name)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lock(filepath.Join(cache, tl.Name+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another process built it while we waited
	}
	if tl.prepare != nil {
		err = tl.prepare(dir)
	} else {
		err = goCmd("", []string{"GOBIN=" + dir}, "install", tl.Package+"@"+tl.Version)
	}
	if err != nil {
		return "", fmt.Errorf("build %s@%s: %w", tl.Package, tl.Version, err)
	}
	return bin, nil
}

func goCmd(dir string, env []string, args ...string) error {
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// buildAlertmanager builds Alertmanager from its module source. The module
// as published lacks the compiled web UI that ui/web.go embeds, so plain
// `go install` fails; the tests need the API only, so a placeholder UI is
// put in its place.
func buildAlertmanager(dir string) error {
	mod := "github.com/prometheus/alertmanager@" + alertmanagerVersion
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "mod", "download", "-json", mod).Output()
	if err != nil {
		return fmt.Errorf("go mod download %s: %w", mod, err)
	}
	src := jsonField(string(out), "Dir")
	if src == "" {
		return fmt.Errorf("go mod download %s: no Dir in %s", mod, out)
	}
	work, err := os.MkdirTemp("", "alertmanager-src-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.CopyFS(work, os.DirFS(src)); err != nil {
		return fmt.Errorf("copy module source: %w", err)
	}
	for _, d := range []string{"elm", "mantine"} {
		p := filepath.Join(work, "ui", "app", "dist", d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(p, "index.html"), []byte("<!doctype html><title>Alertmanager</title>"), 0o644); err != nil {
			return err
		}
	}
	// The copied tree keeps the module cache's read-only permissions.
	if err := filepath.WalkDir(work, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chmod(p, 0o755)
	}); err != nil {
		return err
	}
	return goCmd(work, []string{"GOFLAGS=-mod=mod"}, "build", "-o", filepath.Join(dir, "alertmanager"), "./cmd/alertmanager")
}

// jsonField pulls one string field out of `go mod download -json` output
// without a JSON dependency on the shape of the whole document.
func jsonField(doc, name string) string {
	key := `"` + name + `": "`
	i := strings.Index(doc, key)
	if i < 0 {
		return ""
	}
	rest := doc[i+len(key):]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return rest[:j]
}

var (
	buildOnce sync.Map // binary name -> *builtBinary
)

type builtBinary struct {
	once sync.Once
	path string
	err  error
}

// FluxPulse builds a binary of this module (cmd/<name>) once per test
// process and returns its path. When $FLUXPULSE_BIN_DIR holds it (test.sh
// builds every binary there once for all packages), that one is used.
func FluxPulse(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv("FLUXPULSE_BIN_DIR"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	v, _ := buildOnce.LoadOrStore(name, &builtBinary{})
	b := v.(*builtBinary)
	b.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			b.err = err
			return
		}
		dir, err := os.MkdirTemp("", "fluxpulse-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, name)
		b.err = goCmd(root, nil, "build", "-o", b.path, "./cmd/"+name)
	})
	if b.err != nil {
		t.Fatalf("build %s: %v", name, b.err)
	}
	return b.path
}

func moduleRoot() (string, error) {
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the FluxPulse module")
	}
	return filepath.Dir(gomod), nil
}
