package hatracker

import (
	"errors"
	"fmt"
	"testing"
	"time"
	"unsafe"
)

func newTracker(t *testing.T, now *time.Time) *Tracker {
	t.Helper()
	tr, err := New(Config{Enabled: true, FailoverTimeout: 30 * time.Second, UpdateTimeout: 15 * time.Second,
		ClusterLabel: "cluster", ReplicaLabel: "__replica__"}, NewMemStore(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.now = func() time.Time { return *now }
	return tr
}

// TestElection walks one cluster through election, refusal of the other
// replica, refreshes, and failover once the elected replica went quiet.
func TestElection(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tr := newTracker(t, &now)
	ctx := t.Context()
	step := func(replica string, want string) {
		t.Helper()
		err := tr.Check(ctx, "team-a", "eu-1", replica, 0)
		var ne *NotElectedError
		switch {
		case want == "" && err != nil:
			t.Fatalf("%s at %s: %v, want accepted", replica, now.Format(time.TimeOnly), err)
		case want != "" && (!errors.As(err, &ne) || ne.Elected != want):
			t.Fatalf("%s at %s: %v, want refused with %s elected", replica, now.Format(time.TimeOnly), err, want)
		}
	}
	step("a", "")  // first one is elected
	step("b", "a") // the other is refused
	now = now.Add(20 * time.Second)
	step("a", "") // refreshes a (older than the update timeout)
	now = now.Add(25 * time.Second)
	step("b", "a") // a was seen 25s ago: still elected
	now = now.Add(10 * time.Second)
	step("b", "") // 35s without a: b takes over
	step("a", "b")
	// Another tenant's identical cluster is independent.
	if err := tr.Check(ctx, "team-b", "eu-1", "a", 0); err != nil {
		t.Fatalf("team-b: %v", err)
	}
}

func TestMaxClusters(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tr := newTracker(t, &now)
	for k := range 3 {
		if err := tr.Check(t.Context(), "team-a", fmt.Sprint("c", k), "a", 3); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Check(t.Context(), "team-a", "c3", "a", 3); !errors.Is(err, ErrTooManyClusters) {
		t.Fatalf("fourth cluster: %v, want ErrTooManyClusters", err)
	}
	if err := tr.Check(t.Context(), "team-a", "c1", "a", 3); err != nil {
		t.Fatalf("known cluster: %v", err)
	}
}

// TestMergeConverges checks the properties memberlist needs of Merge:
// applying updates in any order, more than once, ends in the same value.
func TestMergeConverges(t *testing.T) {
	vs := []Replica{
		{Replica: "a", ElectedAt: 100, ReceivedAt: 150},
		{Replica: "a", ElectedAt: 100, ReceivedAt: 190},
		{Replica: "b", ElectedAt: 200, ReceivedAt: 200},
		{Replica: "c", ElectedAt: 200, ReceivedAt: 200},
	}
	want := Replica{Replica: "c", ElectedAt: 200, ReceivedAt: 200}
	perms := [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}, {1, 3, 0, 2, 3, 1}}
	for _, p := range perms {
		r := vs[p[0]]
		for _, i := range p[1:] {
			o := vs[i]
			if _, err := r.Merge(&o, false); err != nil {
				t.Fatal(err)
			}
		}
		if r != want {
			t.Fatalf("order %v: %+v, want %+v", p, r, want)
		}
		again := want
		if ch, _ := r.Merge(&again, false); ch != nil {
			t.Fatalf("merging the same value again reported a change %v", ch)
		}
	}
	var c Codec
	b, err := c.Encode(&want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Decode(b)
	if err != nil || *got.(*Replica) != want {
		t.Fatalf("codec: %v %v", got, err)
	}
}

// TestCheckKeepsCopies checks that the tracker copies what it keeps: the
// distributor passes label values that alias a pooled request body, which
// the next request overwrites.
func TestCheckKeepsCopies(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tr := newTracker(t, &now)
	body := []byte("eu-1r1")
	cluster, replica := unsafe.String(&body[0], 4), unsafe.String(&body[4], 2)
	if err := tr.Check(t.Context(), "team-a", cluster, replica, 0); err != nil {
		t.Fatal(err)
	}
	copy(body, "xxxxr2") // the buffer is reused by the next request
	if err := tr.Check(t.Context(), "team-a", "eu-1", "r1", 0); err != nil {
		t.Fatalf("the elected replica was refused once its request's buffer was reused: %v", err)
	}
}
