package hatracker

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/grafana/dskit/kv/memberlist"
)

// Replica is the elected replica of one tenant's cluster.
type Replica struct {
	Replica    string `json:"replica"`
	ElectedAt  int64  `json:"elected_at"`  // ms
	ReceivedAt int64  `json:"received_at"` // ms: the last push of the elected replica that refreshed it
}

var _ memberlist.Mergeable = (*Replica)(nil)

// after orders Replicas totally: by election time, then replica name, then
// last receipt. Merging keeps the greater, so that every process ends with
// the same value whatever order the updates arrive in.
func (r *Replica) after(o *Replica) bool {
	if r.ElectedAt != o.ElectedAt {
		return r.ElectedAt > o.ElectedAt
	}
	if r.Replica != o.Replica {
		return strings.Compare(r.Replica, o.Replica) > 0
	}
	return r.ReceivedAt > o.ReceivedAt
}

// Merge implements memberlist.Mergeable.
func (r *Replica) Merge(other memberlist.Mergeable, _ bool) (memberlist.Mergeable, error) {
	o, ok := other.(*Replica)
	if !ok {
		return nil, fmt.Errorf("hatracker: cannot merge %T", other)
	}
	if o == nil || !o.after(r) {
		return nil, nil
	}
	*r = *o
	return r.Clone(), nil
}

// MergeContent implements memberlist.Mergeable.
func (r *Replica) MergeContent() []string { return []string{r.Replica} }

// RemoveTombstones implements memberlist.Mergeable: there are none.
func (r *Replica) RemoveTombstones(time.Time) (total, removed int) { return 0, 0 }

// Clone implements memberlist.Mergeable.
func (r *Replica) Clone() memberlist.Mergeable {
	c := *r
	return &c
}

// Codec encodes Replicas for the KV store.
type Codec struct{}

// CodecID implements codec.Codec.
func (Codec) CodecID() string { return "fluxpulse-ha-replica" }

// Decode implements codec.Codec.
func (Codec) Decode(b []byte) (any, error) {
	var r Replica
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode HA replica: %w", err)
	}
	return &r, nil
}

// Encode implements codec.Codec.
func (Codec) Encode(v any) ([]byte, error) {
	r, ok := v.(*Replica)
	if !ok {
		return nil, fmt.Errorf("hatracker: cannot encode %T", v)
	}
	return json.Marshal(r)
}
