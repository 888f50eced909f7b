package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// SegmentReport is the outcome of VerifySegments for one instance.
type SegmentReport struct {
	Instance string
	Segments int    // segments that verified, in order, before any damage
	Entries  int    // entries in them
	LastSeq  uint64 // seq of the last entry that verified
	HeadSeq  uint64 // seq the head records
	// Segment names the segment the problem is in, or the missing one
	// (the seqs it held, when several are gone); Problem says what is
	// wrong. Both are empty when the chain verified.
	Segment string
	Problem string
}

// OK reports whether the instance's chain verified.
func (r SegmentReport) OK() bool { return r.Problem == "" }

// Instances lists the instances that shipped segments to store.
func Instances(ctx context.Context, store SegmentStore) ([]string, error) {
	var out []string
	err := store.List(ctx, "", func(name string) error {
		if inst, rest, ok := strings.Cut(name, "/"); ok && (rest == headObject || strings.HasPrefix(rest, segmentsDir+"/")) && !slices.Contains(out, inst) {
			out = append(out, inst)
		}
		return nil
	})
	return out, err
}

// VerifySegments checks the chain an instance shipped: every segment opens
// (a changed byte does not), its entries are in canonical form and hashed
// right, seq numbers run from 1 without a gap from one segment to the next
// (a missing segment is named by the seqs it held), each entry's prev is the
// hash of the one before, also across segments, and the chain reaches the
// entry the head records (so a segment removed from the end is noticed).
// Damage is in the report; the error is for what could not be read.
func VerifySegments(ctx context.Context, store SegmentStore, instance string) (SegmentReport, error) {
	rep := SegmentReport{Instance: instance}
	var names []string
	err := store.List(ctx, instance+"/"+segmentsDir, func(name string) error {
		if _, _, ok := parseSegmentName(name); ok {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("list audit segments of %s: %w", instance, err)
	}
	slices.Sort(names)
	var head segmentHead
	hb, err := store.Get(ctx, instance+"/"+headObject)
	if err == nil {
		err = json.Unmarshal(hb, &head)
	}
	if err != nil {
		rep.Segment, rep.Problem = instance+"/"+headObject, fmt.Sprintf("the head is missing or unreadable: %v", err)
		return rep, nil
	}
	rep.HeadSeq = head.Seq
	v := verifier{anchor: anchorJSON{Seq: head.Seq, Hash: head.Hash}}
	v.rep.LastHash = ZeroHash
	for _, name := range names {
		first, last, _ := parseSegmentName(name)
		if want := v.rep.LastSeq + 1; first != want {
			rep.Segment, rep.Problem = gapName(instance, want, first), fmt.Sprintf("segment missing: seq %d to %d are in no segment (%s is next)", want, first-1, name)
			if first < want {
				rep.Segment, rep.Problem = name, fmt.Sprintf("segment overlaps the one before: it starts at seq %d, the chain is at seq %d", first, v.rep.LastSeq)
			}
			return rep, nil
		}
		b, err := store.Get(ctx, name)
		if err != nil {
			rep.Segment, rep.Problem = name, fmt.Sprintf("segment does not open (altered, or not sealed with this cluster's keys): %v", err)
			return rep, nil
		}
		v.r, v.line = bufio.NewReaderSize(bytes.NewReader(b), MaxLineSize+1), 0
		if err := v.run(); err != nil {
			return rep, err
		}
		if !v.rep.OK() {
			rep.Segment, rep.Problem = name, fmt.Sprintf("%s at line %d: %s", v.rep.Kind, v.rep.Line, v.rep.Problem)
			return rep, nil
		}
		if v.rep.LastSeq != last {
			rep.Segment, rep.Problem = name, fmt.Sprintf("segment ends at seq %d, its name says %d", v.rep.LastSeq, last)
			return rep, nil
		}
		rep.Segments, rep.Entries, rep.LastSeq = rep.Segments+1, v.rep.Entries, v.rep.LastSeq
	}
	if head.Seq > rep.LastSeq {
		missing := head.Segment
		if f, _, ok := parseSegmentName(missing); !ok || f != rep.LastSeq+1 {
			missing = gapName(instance, rep.LastSeq+1, head.Seq+1)
		}
		rep.Segment, rep.Problem = missing, fmt.Sprintf("segment missing: the head records seq %d, the segments end at seq %d", head.Seq, rep.LastSeq)
	}
	return rep, nil
}

// gapName names what is missing between seq from and seq next: the name
// of the one segment that would fill it.
func gapName(instance string, from, next uint64) string {
	return SegmentName(instance, from, next-1)
}
