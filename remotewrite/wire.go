package remotewrite

import (
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// Protobuf wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireStart   = 3 // deprecated groups; rejected
	wireEnd     = 4
	wireFixed32 = 5
)

var (
	errTruncated   = errors.New("truncated message")
	errOverflow    = errors.New("varint overflows 64 bits")
	errBadWireType = errors.New("unsupported wire type")
	errBadField    = errors.New("illegal field number")
)

// reader walks one protobuf message. It never allocates and never panics on
// malformed input: every read checks the remaining length first.
type reader struct {
	b []byte
}

func (r *reader) done() bool { return len(r.b) == 0 }

func (r *reader) varint() (uint64, error) {
	// Like protobuf's own decoders, bits beyond 64 are dropped rather than
	// rejected, so that both decoders accept exactly the same inputs.
	var v uint64
	for i := 0; i < 10; i++ {
		if i >= len(r.b) {
			return 0, errTruncated
		}
		c := r.b[i]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			r.b = r.b[i+1:]
			return v, nil
		}
	}
	return 0, errOverflow
}

// key reads a field key and returns the field number and wire type.
func (r *reader) key() (int, int, error) {
	k, err := r.varint()
	if err != nil {
		return 0, 0, err
	}
	// Field numbers are 29 bits; the truncation matches the generated gogo
	// decoders so both accept the same inputs.
	field := int32(k >> 3)
	if field <= 0 {
		return 0, 0, errBadField
	}
	return int(field), int(k & 7), nil
}

func (r *reader) fixed64() (uint64, error) {
	if len(r.b) < 8 {
		return 0, errTruncated
	}
	b := r.b
	v := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
	r.b = r.b[8:]
	return v, nil
}

func (r *reader) double() (float64, error) {
	v, err := r.fixed64()
	return math.Float64frombits(v), err
}

func (r *reader) int64() (int64, error) {
	v, err := r.varint()
	return int64(v), err
}

func (r *reader) uint32() (uint32, error) {
	v, err := r.varint()
	return uint32(v), err
}

// bytes reads a length-delimited field.
func (r *reader) bytes() ([]byte, error) {
	n, err := r.varint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)) {
		return nil, errTruncated
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v, nil
}

// str reads a length-delimited field as a string that aliases the input.
func (r *reader) str() (string, error) {
	b, err := r.bytes()
	if err != nil {
		return "", err
	}
	return yoloString(b), nil
}

// skip skips one field value of the given wire type. Groups, deprecated but
// still legal protobuf, are skipped up to a fixed nesting depth.
func (r *reader) skip(wire int) error {
	return r.skipDepth(wire, 0)
}

const maxGroupDepth = 64

func (r *reader) skipDepth(wire, depth int) error {
	switch wire {
	case wireVarint:
		_, err := r.varint()
		return err
	case wireFixed64:
		if len(r.b) < 8 {
			return errTruncated
		}
		r.b = r.b[8:]
	case wireBytes:
		_, err := r.bytes()
		return err
	case wireFixed32:
		if len(r.b) < 4 {
			return errTruncated
		}
		r.b = r.b[4:]
	case wireStart:
		if depth >= maxGroupDepth {
			return errors.New("groups nested too deeply")
		}
		for {
			// Keys inside a skipped group are not checked, as in gogo.
			k, err := r.varint()
			if err != nil {
				return err
			}
			if w := int(k & 7); w == wireEnd {
				return nil
			} else if err := r.skipDepth(w, depth+1); err != nil {
				return err
			}
		}
	default:
		return errBadWireType
	}
	return nil
}

// expect checks that a known field arrived with the wire type its schema says.
func expect(field, got, want int) error {
	if got != want {
		return fmt.Errorf("field %d: wire type %d, want %d", field, got, want)
	}
	return nil
}

// yoloString returns a string that shares b's memory. b must not change while
// the string is in use.
func yoloString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// unsafeBytes returns the bytes of s without copying; they must not be
// modified.
func unsafeBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
