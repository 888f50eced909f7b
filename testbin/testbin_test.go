package testbin

import "testing"

// TestInstallAll builds every pinned tool that is not cached yet. .ci/run
// calls it before the test suite so that the first test needing a tool does
// not spend its timeout building it.
func TestInstallAll(t *testing.T) {
	for _, tl := range All {
		t.Run(tl.Name, func(t *testing.T) {
			t.Log(tl.Path(t))
		})
	}
}
