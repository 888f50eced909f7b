package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Actions recorded by FluxPulse. Callers may use other dotted names; these
// are the ones the server and the CLI write.
const (
	ActionAuthFailure      = "auth.failure"
	ActionPushSummary      = "push.summary"
	ActionQuery            = "query"
	ActionQuerySeries      = "query.series"
	ActionTenantCreate     = "tenant.create"
	ActionTenantDelete     = "tenant.delete"
	ActionTokenCreate      = "token.create"
	ActionTokenRevoke      = "token.revoke"
	ActionLimitsChange     = "limits.change"
	ActionConfigReload     = "config.reload"
	ActionKeysRotateMaster = "keys.rotate-master"
	ActionRulesChange      = "rules.change"
	ActionExport           = "export"
	// The tenant's Alertmanager (#16): configuration stored or deleted,
	// silence created, updated or expired.
	ActionAlertmanagerConfigChange = "alertmanager.config.change"
	ActionAlertmanagerConfigDelete = "alertmanager.config.delete"
	ActionSilenceCreate            = "alertmanager.silence.create"
	ActionSilenceUpdate            = "alertmanager.silence.update"
	ActionSilenceExpire            = "alertmanager.silence.expire"
)

// Outcomes of an action.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
)

// ActorSystem is the actor of entries FluxPulse writes on its own behalf.
const ActorSystem = "system"

// TimeLayout is the layout of the time member: UTC, always nine fractional
// digits, so that every instant has exactly one encoding.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// ZeroHash is the prev of the first entry of a log.
const ZeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// MaxLineSize bounds the length of one encoded entry, newline included. Log
// shortens the target and drops the details of an entry that would be
// longer (see shrink), so that readers can find the last entry of a log by
// reading a bounded tail.
const MaxLineSize = 64 << 10

// Entry is one audited action. Actor is a token ID, "header", "cli:<os
// user>" or "system": never a secret. Log fills Time (when zero), Seq, Prev
// and Hash, and Sealed when the Logger has Keys.
type Entry struct {
	Time    time.Time
	Seq     uint64
	Actor   string
	Tenant  string
	Action  string
	Target  string
	Outcome string
	// Details is a small JSON-encodable map. Log stores its canonical form
	// (see canonicalDetails), so numbers read back as json.Number.
	Details map[string]any
	// Sealed holds Target and Details encrypted. Entries read from a log
	// written with Keys have it and an empty Target and Details, until
	// Unseal fills them in. Log ignores what a caller puts here.
	Sealed *Sealed
	Prev   string
	Hash   string
}

// errMalformed marks a line that is not a canonical entry.
var errMalformed = errors.New("malformed entry")

// appendCanonical appends the canonical encoding of e, whose details are
// already in canonical form (nil or empty means none): a JSON object without
// whitespace holding, in this order, time, seq, actor, tenant, action,
// target, outcome, details (only when present) and prev. A sealed entry has
// no target and details but, after outcome, a member sealed:
// {"key":"<key ID>","data":"<base64>"}.
func appendCanonical(b []byte, e *Entry, details []byte) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.UTC().AppendFormat(b, TimeLayout)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	for _, f := range [...]struct{ name, v string }{
		{`,"actor":`, e.Actor}, {`,"tenant":`, e.Tenant}, {`,"action":`, e.Action},
		{`,"target":`, e.Target}, {`,"outcome":`, e.Outcome},
	} {
		if e.Sealed != nil && f.name == `,"target":` {
			continue
		}
		b = append(b, f.name...)
		b = appendString(b, f.v)
	}
	switch {
	case e.Sealed != nil:
		b = append(b, `,"sealed":{"key":`...)
		b = appendString(b, e.Sealed.KeyID)
		b = append(b, `,"data":"`...)
		b = base64.StdEncoding.AppendEncode(b, e.Sealed.Data)
		b = append(b, `"}`...)
	case len(details) > 0:
		b = append(b, `,"details":`...)
		b = append(b, details...)
	}
	b = append(b, `,"prev":`...)
	b = appendString(b, e.Prev)
	return append(b, '}')
}

// entryHash is hex(SHA-256(prev ‖ canonical)), prev being the 64 hex
// characters of the previous entry's hash.
func entryHash(prev string, canonical []byte) string {
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(canonical)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

// appendLine appends the line stored for canonical: the canonical encoding
// with a last member "hash" added, and a newline.
func appendLine(b, canonical []byte, hash string) []byte {
	b = append(b, canonical[:len(canonical)-1]...)
	b = append(b, `,"hash":"`...)
	b = append(b, hash...)
	return append(b, "\"}\n"...)
}

// canonicalDetails encodes details canonically: encoding/json's encoding of
// the value decoded back from its own encoding with numbers kept as written
// (json.Decoder.UseNumber). That makes object keys sorted at every depth and
// turns structs into objects, so the bytes depend only on the JSON value.
// Empty details encode to nil.
func canonicalDetails(details map[string]any) ([]byte, error) {
	if len(details) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(details)
	if err != nil {
		return nil, fmt.Errorf("encode details: %w", err)
	}
	return normalizeDetails(raw)
}

// normalizeDetails re-encodes a JSON object canonically.
func normalizeDetails(raw []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode details: %w", err)
	}
	if d.More() {
		return nil, errors.New("decode details: trailing data")
	}
	if len(m) == 0 {
		return nil, nil
	}
	return json.Marshal(m)
}

// lineJSON is the shape of a stored line, for decoding.
type lineJSON struct {
	Time    string          `json:"time"`
	Seq     uint64          `json:"seq"`
	Actor   string          `json:"actor"`
	Tenant  string          `json:"tenant"`
	Action  string          `json:"action"`
	Target  string          `json:"target"`
	Outcome string          `json:"outcome"`
	Details json.RawMessage `json:"details"`
	Sealed  *sealedJSON     `json:"sealed"`
	Prev    string          `json:"prev"`
	Hash    string          `json:"hash"`
}

type sealedJSON struct {
	Key  string `json:"key"`
	Data []byte `json:"data"` // base64
}

// parsedLine is a decoded line and the canonical encoding it was hashed
// over.
type parsedLine struct {
	entry     Entry
	canonical []byte
}

// parseLine decodes one stored line (without its newline). It accepts only
// lines that are byte for byte what Log writes: canonical members in order,
// a well-formed prev and hash. It does not check the hash.
func parseLine(line []byte) (parsedLine, error) {
	var lj lineJSON
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(&lj); err != nil {
		return parsedLine{}, fmt.Errorf("%w: %w", errMalformed, err)
	}
	t, err := time.Parse(TimeLayout, lj.Time)
	if err != nil {
		return parsedLine{}, fmt.Errorf("%w: time: %w", errMalformed, err)
	}
	if !isHash(lj.Prev) || !isHash(lj.Hash) {
		return parsedLine{}, fmt.Errorf("%w: prev and hash must be 64 lowercase hex digits", errMalformed)
	}
	if lj.Seq == 0 {
		return parsedLine{}, fmt.Errorf("%w: seq must be at least 1", errMalformed)
	}
	var sealed *Sealed
	if lj.Sealed != nil {
		if lj.Sealed.Key == "" || len(lj.Sealed.Data) < sealOverhead {
			return parsedLine{}, fmt.Errorf("%w: sealed needs a key and at least %d bytes of data", errMalformed, sealOverhead)
		}
		sealed = &Sealed{KeyID: lj.Sealed.Key, Data: lj.Sealed.Data}
	}
	var details []byte
	if lj.Details != nil {
		if details, err = normalizeDetails(lj.Details); err != nil {
			return parsedLine{}, fmt.Errorf("%w: %w", errMalformed, err)
		}
	}
	e := Entry{Time: t, Seq: lj.Seq, Actor: lj.Actor, Tenant: lj.Tenant, Action: lj.Action,
		Target: lj.Target, Outcome: lj.Outcome, Sealed: sealed, Prev: lj.Prev, Hash: lj.Hash}
	canonical := appendCanonical(nil, &e, details)
	if stored := appendLine(nil, canonical, lj.Hash); !bytes.Equal(stored[:len(stored)-1], line) {
		return parsedLine{}, fmt.Errorf("%w: not in canonical form", errMalformed)
	}
	if details != nil {
		dd := json.NewDecoder(bytes.NewReader(details))
		dd.UseNumber()
		if err := dd.Decode(&e.Details); err != nil {
			return parsedLine{}, fmt.Errorf("BUG: canonical details do not decode: %w", err)
		}
	}
	return parsedLine{entry: e, canonical: canonical}, nil
}

func isHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string exactly as encoding/json encodes
// it: `"` and `\` escaped with a backslash; \b \f \n \r \t as such; other
// bytes below 0x20, '<', '>', '&', U+2028 and U+2029 as \u00xx or \u20xx
// (lowercase hex); everything else verbatim, except that each byte that is
// not part of valid UTF-8 becomes U+FFFD (where encoding/json would write
// \ufffd), so that decoding and encoding again gives the same bytes.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, `\b`...)
			case '\f':
				b = append(b, `\f`...)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = utf8.AppendRune(b, utf8.RuneError)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
