package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallScript lays out the files with deploy/agent/install.sh under a
// DESTDIR (no root, no systemd needed), twice, and checks that the unit,
// the flags file and the token end up where they refer to each other.
func TestInstallScript(t *testing.T) {
	script := installScript(t)
	root := t.TempDir()
	fakeBin := filepath.Join(t.TempDir(), "fluxpulse-agent")
	if err := os.WriteFile(fakeBin, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	install := func(env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command("/bin/sh", append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(), append(env, "DESTDIR="+root)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("install.sh %q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	install([]string{"FLUXPULSE_TOKEN=tok"}, "--binary", fakeBin, "--url", "https://fp.example.com/api/v1/push",
		"--tenant", "acme", "--process", "nginx,postgres", "--label", "env=prod", "--protocol", "2.0")
	envFile := read("etc/fluxpulse-agent/agent.env")
	for _, want := range []string{
		"-remote-write.url=https://fp.example.com/api/v1/push", "-remote-write.token-file=/etc/fluxpulse-agent/token",
		"-remote-write.tenant=acme", "-process=nginx,postgres", "-external-label=env=prod", "-remote-write.protocol=2.0",
	} {
		if !strings.Contains(envFile, want) {
			t.Errorf("agent.env lacks %s:\n%s", want, envFile)
		}
	}
	if got := read("etc/fluxpulse-agent/token"); got != "tok\n" {
		t.Errorf("token file: got %q", got)
	}
	if fi, err := os.Stat(filepath.Join(root, "etc/fluxpulse-agent/token")); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("token file is readable by others: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(root, "usr/local/bin/fluxpulse-agent")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("binary: %v %v", fi.Mode(), err)
	}
	unit := read("etc/systemd/system/fluxpulse-agent.service")
	for _, want := range []string{"EnvironmentFile=/etc/fluxpulse-agent/agent.env", "ExecStart=/usr/local/bin/fluxpulse-agent ", "$FLUXPULSE_AGENT_ARGS", "User=fluxpulse-agent", "StateDirectory=fluxpulse-agent"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %s", want)
		}
	}

	// Again without settings: everything stays as it is.
	install(nil)
	if got := read("etc/fluxpulse-agent/agent.env"); got != envFile {
		t.Errorf("a second run changed agent.env:\n%s", got)
	}

}

func installScript(t *testing.T) string {
	t.Helper()
	script, err := filepath.Abs("../deploy/agent/install.sh")
	if err != nil {
		t.Fatal(err)
	}
	return script
}

// TestInstallScriptShellcheck lints install.sh with shellcheck. Without
// shellcheck it skips on a developer's machine and fails in CI (CI set),
// where .ci/run installs it: a lint that silently does not run cannot fail
// (#12).
func TestInstallScriptShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("shellcheck is not installed and CI is set: .ci/run installs it, so install.sh would go unlinted (%v)", err)
		}
		t.Skipf("shellcheck is not installed; not linting install.sh (with CI set this fails): %v", err)
	}
	if out, err := exec.Command(sc, "-s", "sh", installScript(t)).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// TestShellcheckRequiredInCI runs TestInstallScriptShellcheck in a child
// process with CI set and no shellcheck on the PATH, and expects it to fail
// (#12).
func TestShellcheckRequiredInCI(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestInstallScriptShellcheck$", "-test.count=1")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "CI=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PATH="+t.TempDir(), "CI=true")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "shellcheck is not installed and CI is set") {
		t.Fatalf("with CI set and no shellcheck the lint test did not fail: %v\n%s", err, out)
	}
}
