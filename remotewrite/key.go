package remotewrite

import (
	"hash/crc32"
	"math/bits"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
)

// SeriesKey identifies a series by its labels as a sender encodes them,
// cheaply, without building a label set: 96 bits from two independent
// hashes (xxhash and CRC-32C), so that two different series of one tenant
// practically never share a key. The same series sent with another protocol
// or another encoding gets another key; a key is for finding the series
// again, not for telling series apart with certainty.
type SeriesKey struct {
	H1 uint64
	H2 uint32
}

// IsZero reports whether no key was computed.
func (k SeriesKey) IsZero() bool { return k == SeriesKey{} }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Seeds keep the key spaces of the two protocols apart.
const (
	seedV1 = 0x9e3779b97f4a7c15
	seedV2 = 0xc2b2ae3d27d4eb4f
	mulV2  = 0xff51afd7ed558ccd
)

// keyOfBytes keys a 1.0 series by the raw bytes of its label fields.
func keyOfBytes(b []byte) SeriesKey {
	return SeriesKey{H1: xxhash.Sum64(b) ^ seedV1, H2: crc32.Update(1, castagnoli, b)}
}

// keyOfLabels keys a 1.0 series whose label fields are not contiguous.
func keyOfLabels(ls []labels.Label) SeriesKey {
	var d xxhash.Digest
	d.Reset()
	h2 := uint32(2)
	sep := []byte{0xff}
	for _, l := range ls {
		_, _ = d.WriteString(l.Name)
		_, _ = d.Write(sep)
		_, _ = d.WriteString(l.Value)
		_, _ = d.Write(sep)
		h2 = crc32.Update(h2, castagnoli, unsafe.Slice(unsafe.StringData(l.Name), len(l.Name)))
		h2 = crc32.Update(h2, castagnoli, unsafe.Slice(unsafe.StringData(l.Value), len(l.Value)))
	}
	return SeriesKey{H1: d.Sum64() ^ seedV1 ^ 1, H2: h2}
}

// symbolHashes hashes every symbol of a 2.0 request once.
func (r *Request) symbolHashes() {
	r.symH1 = r.symH1[:0]
	r.symH2 = r.symH2[:0]
	for _, s := range r.symbols {
		r.symH1 = append(r.symH1, xxhash.Sum64String(s))
		r.symH2 = append(r.symH2, crc32.Update(0, castagnoli, unsafe.Slice(unsafe.StringData(s), len(s))))
	}
}

// keyOfRefs keys a 2.0 series by its symbols, in order. refs must be in
// range.
func (r *Request) keyOfRefs(refs []uint32) SeriesKey {
	h1, h2 := uint64(seedV2), uint32(3)
	for _, ref := range refs {
		h1 = (bits.RotateLeft64(h1, 23) ^ r.symH1[ref]) * mulV2
		h2 = bits.RotateLeft32(h2, 11) ^ r.symH2[ref]*0x9e3779b1
	}
	return SeriesKey{H1: h1, H2: h2}
}
