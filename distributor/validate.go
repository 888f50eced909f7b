package distributor

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/remotewrite"
)

// validator checks the series of one request against one tenant's limits.
type validator struct {
	lim     limits.Limits
	scheme  model.ValidationScheme
	minTime int64 // oldest acceptable timestamp, in milliseconds
	maxTime int64 // newest acceptable timestamp, in milliseconds
}

func newValidator(lim limits.Limits, now time.Time) validator {
	v := validator{lim: lim, scheme: model.UTF8Validation, minTime: math.MinInt64, maxTime: now.Add(lim.CreationGracePeriod).UnixMilli()}
	if lim.MaxSampleAge > 0 {
		v.minTime = now.Add(-lim.MaxSampleAge).UnixMilli()
	}
	if lim.NameValidationScheme == "legacy" {
		v.scheme = model.LegacyValidation
	}
	return v
}

// validateMetadata checks the family-level metadata of a 1.0 request in
// place: what is refused is removed and recorded in res. Series are
// validated by the Pusher through the Validator methods below, so that a
// series it already stored is not validated again.
func (v *validator) validateMetadata(req *remotewrite.Request, res *remotewrite.Result) {
	keptMeta := req.Metadata[:0]
	for _, m := range req.Metadata {
		if m.FamilyName == "" || !v.scheme.IsValidMetricName(m.FamilyName) || !v.metadata(m) || len(m.FamilyName) > v.lim.MaxMetadataLength {
			res.Reject(0, 0, fmt.Sprintf("metadata for metric family %q dropped: the family name must be a valid metric name and name, help and unit at most %d bytes of UTF-8 (%s)",
				truncate(m.FamilyName), v.lim.MaxMetadataLength, limits.Source(limits.FlagMaxMetadataLength)))
			continue
		}
		keptMeta = append(keptMeta, m)
	}
	req.Metadata = keptMeta
}

// Series implements remotewrite.Validator.
func (v *validator) Series(s *remotewrite.Series, index int) string {
	return v.series(s, index)
}

// Samples implements remotewrite.Validator.
func (v *validator) Samples(s *remotewrite.Series, res *remotewrite.Result) {
	v.sampleTimes(s, res)
	if !s.Metadata.IsEmpty() && !v.metadata(s.Metadata) {
		res.Reject(0, 0, fmt.Sprintf("metadata of series %s dropped: help or unit is longer than %d bytes (%s) or not valid UTF-8",
			seriesString(s.Labels), v.lim.MaxMetadataLength, limits.Source(limits.FlagMaxMetadataLength)))
		s.Metadata = remotewrite.Metadata{}
	}
}

// series returns why a series is refused as a whole, or "".
func (v *validator) series(s *remotewrite.Series, index int) string {
	if s.Err != nil {
		return fmt.Sprintf("series %d: %v", index, s.Err)
	}
	ls := s.Labels
	if len(ls) == 0 {
		return fmt.Sprintf("series %d has no labels", index)
	}
	if n := v.lim.MaxLabelNamesPerSeries; n > 0 && len(ls) > n {
		return fmt.Sprintf("series %s has %d labels, the limit is %d (%s)", seriesString(ls), len(ls), n, limits.Source(limits.FlagMaxLabelNamesPerSeries))
	}
	name := ""
	for k, l := range ls {
		if msg := v.label(ls, k); msg != "" {
			return msg
		}
		if l.Name == labels.MetricName {
			name = l.Value
		}
	}
	if name == "" {
		return fmt.Sprintf("series %s has no metric name (the __name__ label is missing or empty)", seriesString(ls))
	}
	if !v.scheme.IsValidMetricName(name) {
		return fmt.Sprintf("series %s has an invalid metric name %q under the %s name validation scheme (%s)", seriesString(ls), truncate(name), v.scheme, limits.Source(limits.FlagNameValidationScheme))
	}
	// Senders put exemplars in series of their own, without samples
	// (Prometheus does, in both protocols).
	if len(s.Samples)+len(s.Histograms)+len(s.Exemplars) == 0 {
		return fmt.Sprintf("series %s has no samples, histograms or exemplars", seriesString(ls))
	}
	// Drop empty values only now that order and uniqueness are checked.
	kept := ls[:0]
	for _, l := range ls {
		if l.Value != "" {
			kept = append(kept, l)
		}
	}
	s.Labels = kept
	return ""
}

// label checks label k of ls, and that it sorts after label k-1.
func (v *validator) label(ls []labels.Label, k int) string {
	l := ls[k]
	switch {
	case l.Name == "":
		return fmt.Sprintf("series %s has a label with an empty name", seriesString(ls))
	case !utf8.ValidString(l.Name):
		return fmt.Sprintf("series %s has a label name that is not valid UTF-8: %q", seriesString(ls), truncate(l.Name))
	case !v.scheme.IsValidLabelName(l.Name):
		return fmt.Sprintf("series %s has an invalid label name %q under the %s name validation scheme (%s)", seriesString(ls), truncate(l.Name), v.scheme, limits.Source(limits.FlagNameValidationScheme))
	case v.lim.MaxLabelNameLength > 0 && len(l.Name) > v.lim.MaxLabelNameLength:
		return fmt.Sprintf("series %s has a label name of %d bytes (%q), the limit is %d (%s)", seriesString(ls), len(l.Name), truncate(l.Name), v.lim.MaxLabelNameLength, limits.Source(limits.FlagMaxLabelNameLength))
	case !utf8.ValidString(l.Value):
		return fmt.Sprintf("series %s has a value of label %q that is not valid UTF-8", seriesString(ls), l.Name)
	case v.lim.MaxLabelValueLength > 0 && len(l.Value) > v.lim.MaxLabelValueLength:
		return fmt.Sprintf("series %s has a value of %d bytes for label %q, the limit is %d (%s)", seriesString(ls), len(l.Value), l.Name, v.lim.MaxLabelValueLength, limits.Source(limits.FlagMaxLabelValueLength))
	}
	if k > 0 {
		switch prev := ls[k-1].Name; {
		case prev == l.Name:
			return fmt.Sprintf("series %s has the label name %q more than once", seriesString(ls), l.Name)
		case prev > l.Name:
			return fmt.Sprintf("series %s has labels out of order: %q comes after %q; remote write requires labels sorted by name", seriesString(ls), l.Name, prev)
		}
	}
	return ""
}

// sampleTimes drops samples too far in the future or too old.
func (v *validator) sampleTimes(s *remotewrite.Series, res *remotewrite.Result) {
	kept := s.Samples[:0]
	for _, smp := range s.Samples {
		if v.badTime(s.Labels, smp.Timestamp, res) {
			continue
		}
		kept = append(kept, smp)
	}
	s.Samples = kept
	keptH := s.Histograms[:0]
	for _, h := range s.Histograms {
		if v.badTime(s.Labels, h.Timestamp, res) {
			continue
		}
		keptH = append(keptH, h)
	}
	s.Histograms = keptH
}

func (v *validator) badTime(ls []labels.Label, ts int64, res *remotewrite.Result) bool {
	if ts >= v.minTime && ts <= v.maxTime {
		return false
	}
	res.RejectFunc(0, 1, func() string {
		at := time.UnixMilli(ts).UTC().Format(time.RFC3339Nano)
		if ts > v.maxTime {
			return fmt.Sprintf("sample at %s for series %s is too far in the future: the limit is %s ahead of the server's clock (%s)",
				at, seriesString(ls), v.lim.CreationGracePeriod, limits.Source(limits.FlagCreationGracePeriod))
		}
		return fmt.Sprintf("sample at %s for series %s is too old: the limit is %s behind the server's clock (%s)",
			at, seriesString(ls), v.lim.MaxSampleAge, limits.Source(limits.FlagMaxSampleAge))
	})
	return true
}

func (v *validator) metadata(m remotewrite.Metadata) bool {
	n := v.lim.MaxMetadataLength
	if n > 0 && (len(m.Help) > n || len(m.Unit) > n) {
		return false
	}
	return utf8.ValidString(m.Help) && utf8.ValidString(m.Unit)
}

// seriesString renders labels for an error message, with long or invalid
// values shortened and escaped so that a message stays readable and bounded.
func seriesString(ls []labels.Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for k, l := range ls {
		if k > 0 {
			b.WriteString(", ")
		}
		if k >= 12 {
			fmt.Fprintf(&b, "… %d more", len(ls)-k)
			break
		}
		if utf8.ValidString(l.Name) {
			b.WriteString(truncate(l.Name))
		} else {
			fmt.Fprintf(&b, "%q", truncate(l.Name))
		}
		fmt.Fprintf(&b, "=%q", truncate(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

const maxShown = 100

func truncate(s string) string {
	if len(s) <= maxShown {
		return s
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
