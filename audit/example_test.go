package audit_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/fluxpulse/fluxpulse/audit"
)

func Example() {
	dir, _ := os.MkdirTemp("", "audit-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "audit", "audit.log")

	l, err := audit.Open(path, nil, nil)
	if err != nil {
		panic(err)
	}
	l.Log(audit.Entry{Actor: "cli:alice", Tenant: "team-a", Action: audit.ActionTenantCreate,
		Target: "team-a", Outcome: audit.OutcomeSuccess})
	l.Log(audit.Entry{Actor: "tok-7f3a", Tenant: "team-a", Action: audit.ActionQuery,
		Target: `up{job="node"}`, Outcome: audit.OutcomeSuccess, Details: map[string]any{"series": 3}})
	l.RecordPush("team-a", "tok-7f3a", audit.PushStats{Samples: 500, Bytes: 4096, StatusCode: 204})
	if err := l.Close(); err != nil { // writes the push summary
		panic(err)
	}

	rep, err := audit.Verify(path)
	fmt.Println(rep.Entries, rep.LastSeq, err)
	// Output: 3 3 <nil>
}
