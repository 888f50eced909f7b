package querier

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

func TestWithTenant(t *testing.T) {
	for _, tc := range []struct {
		in, want labels.Labels
	}{
		{labels.FromStrings("__name__", "up"), labels.FromStrings("__name__", "up", TenantLabel, "a")},
		{labels.FromStrings("__name__", "up", TenantLabel, "own"), labels.FromStrings("__name__", "up", TenantLabel, "a", originalTenantLabel, "own")},
	} {
		if got := withTenant(tc.in, "a"); !labels.Equal(got, tc.want) {
			t.Errorf("withTenant(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestFederationSplitsTenantMatchers(t *testing.T) {
	f := &federated[storage.Querier]{ids: []string{"a", "b", "c"}}
	for _, tc := range []struct {
		ms      []*labels.Matcher
		tenants []int
		rest    int
	}{
		{nil, []int{0, 1, 2}, 0},
		{[]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, TenantLabel, "b")}, []int{1}, 0},
		{[]*labels.Matcher{labels.MustNewMatcher(labels.MatchNotEqual, TenantLabel, "b"), labels.MustNewMatcher(labels.MatchEqual, "job", "x")}, []int{0, 2}, 1},
		{[]*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, TenantLabel, "a|c"), labels.MustNewMatcher(labels.MatchEqual, TenantLabel, "c")}, []int{2}, 0},
		{[]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, TenantLabel, "z")}, []int{}, 0},
	} {
		idx, rest := f.split(tc.ms)
		if len(rest) != tc.rest || len(idx) != len(tc.tenants) {
			t.Errorf("split(%v) = %v, %v; want tenants %v and %d other matchers", tc.ms, idx, rest, tc.tenants, tc.rest)
			continue
		}
		for i := range idx {
			if idx[i] != tc.tenants[i] {
				t.Errorf("split(%v) tenants %v, want %v", tc.ms, idx, tc.tenants)
			}
		}
	}
}
