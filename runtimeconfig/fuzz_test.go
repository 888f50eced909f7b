package runtimeconfig

import "testing"

// FuzzParseOp checks that decoding a change never panics and that what it
// accepts encodes and decodes to the same change.
func FuzzParseOp(f *testing.F) {
	f.Add([]byte("action: tenant.create\ntenant: acme\nlimits: {max_series: 5}\n"))
	f.Add([]byte("action: token.revoke\ntoken_id: 0123456789ab\n"))
	f.Add([]byte("action: nope\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		op, err := ParseOp(b)
		if err != nil {
			return
		}
		out, err := MarshalOp(op)
		if err != nil {
			t.Fatalf("accepted change does not encode: %v", err)
		}
		if _, err := ParseOp(out); err != nil {
			t.Fatalf("encoded change %q does not decode: %v", out, err)
		}
		var f File
		f.Tenants = map[string]*Tenant{}
		_ = f.Apply(op, flagDefaults())
	})
}
