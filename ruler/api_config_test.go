package ruler

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fluxpulse/fluxpulse/audit"
	"github.com/fluxpulse/fluxpulse/bucket"
	"github.com/fluxpulse/fluxpulse/limits"
	"github.com/fluxpulse/fluxpulse/testbin"
)

const goodGroup = `name: availability
interval: 1s
rules:
  - alert: TargetDown
    expr: up == 0
    for: 5s
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.instance }} is down"
  - record: job:up:sum
    expr: sum by (job) (up)
`

// TestConfigAPI walks every endpoint of the rules configuration API and
// every rejection, in order: each step sees the state the earlier ones left.
func TestConfigAPI(t *testing.T) {
	e := newEnv(t, testConfig(t), nil, nil)
	lim := defaultLimits(t)
	lim.RulerMaxRuleGroups = 3
	lim.RulerMaxRulesPerGroup = 2
	lim.RulerMinEvaluationInterval = time.Second
	e.lim.Set(lim, nil)
	for _, tc := range configAPISteps() {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(tc.method, tc.path, tc.tenant, tc.body)
			if code != tc.code {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("%s %s: body %q does not contain %q", tc.method, tc.path, body, w)
				}
			}
		})
	}

	t.Run("audit", func(t *testing.T) {
		var changes, failures int
		for _, en := range e.audit.Entries() {
			if en.Action != audit.ActionRulesChange || en.Actor != "header" {
				t.Errorf("entry %+v", en)
			}
			switch en.Outcome {
			case audit.OutcomeSuccess:
				changes++
			case audit.OutcomeFailure:
				failures++
			}
		}
		// 202s: create, weird, replace, third, rule file, delete group,
		// delete namespace; 4xx POSTs: 20 rejections (no audit for GETs
		// and for deletions of what did not exist).
		if changes != 7 || failures != 20 {
			t.Errorf("%d successful and %d failed changes audited, want 7 and 20", changes, failures)
		}
	})
}

// configStep is one request of TestConfigAPI and what it must answer.
type configStep struct {
	name, method, path, tenant, body string
	code                             int
	want                             []string // substrings of the body
}

// configAPISteps are the requests of TestConfigAPI, in order.
func configAPISteps() []configStep {
	weird := "team/a b?%.." // slashes, spaces, query and escape characters, dots
	big := "name: big\nrules:\n  - record: x\n    expr: '" + strings.Repeat("1+", MaxGroupBytes/2) + "1'\n"

	return []configStep{
		{"empty list is an empty map", "GET", "/api/v1/rules", "team-a", "", 200, []string{"{}"}},
		{"no tenant", "GET", "/api/v1/rules", "", "", 401, []string{"X-Scope-OrgID"}},
		{"create", "POST", "/api/v1/rules/prod", "team-a", goodGroup, 202, []string{`"status":"success"`}},
		{"get group", "GET", "/api/v1/rules/prod/availability", "team-a", "", 200, []string{"name: availability", "alert: TargetDown", "record: job:up:sum", "interval: 1s"}},
		{"get namespace", "GET", "/api/v1/rules/prod", "team-a", "", 200, []string{"prod:\n", "name: availability"}},
		{"list", "GET", "/prometheus/config/v1/rules", "team-a", "", 200, []string{"prod:\n", "- name: availability"}},
		{"other tenant sees nothing", "GET", "/api/v1/rules", "team-b", "", 200, []string{"{}"}},
		{"other tenant's group is missing", "GET", "/api/v1/rules/prod/availability", "team-b", "", 404, []string{"group does not exist"}},
		{"missing namespace", "GET", "/api/v1/rules/nope", "team-a", "", 404, []string{"no rule groups found"}},
		{"missing group", "GET", "/api/v1/rules/prod/nope", "team-a", "", 404, []string{"group does not exist"}},
		{"any name through escaping", "POST", "/prometheus/config/v1/rules/" + url.PathEscape(weird), "team-a",
			"name: '" + weird + "'\nrules: [{record: 'x:y', expr: '1'}]\n", 202, nil},
		{"read back the escaped names", "GET", "/api/v1/rules/" + url.PathEscape(weird) + "/" + url.PathEscape(weird), "team-a", "", 200, []string{"record: x:y"}},

		{"bad yaml", "POST", "/api/v1/rules/prod", "team-a", "name: [", 400, []string{"invalid rules configuration"}},
		{"empty body", "POST", "/api/v1/rules/prod", "team-a", "", 400, []string{"the body is empty"}},
		{"unknown field", "POST", "/api/v1/rules/prod", "team-a", "name: g\nrulez: []\n", 400, []string{"field rulez not found"}},
		{"missing name", "POST", "/api/v1/rules/prod", "team-a", "rules: [{record: x, expr: '1'}]\n", 400, []string{"rule group name must not be empty"}},
		{"no rules", "POST", "/api/v1/rules/prod", "team-a", "name: g\n", 400, []string{`rule group "g" has no rules`}},
		{"bad promql", "POST", "/api/v1/rules/prod", "team-a", "name: g\nrules:\n  - alert: BadExpr\n    expr: sum(up\n", 400,
			[]string{`group "g", rule 1, "BadExpr"`, "could not parse expression"}},
		{"bad template", "POST", "/api/v1/rules/prod", "team-a", "name: g\nrules:\n  - alert: BadTemplate\n    expr: up == 0\n    annotations:\n      summary: '{{ $labels.instance'\n", 400,
			[]string{`rule 1, "BadTemplate"`, `annotation "summary"`}},
		{"missing expr", "POST", "/api/v1/rules/prod", "team-a", "name: g\nrules:\n  - record: r\n", 400, []string{`rule 1, "r"`, "field 'expr' must be set"}},
		{"neither record nor alert", "POST", "/api/v1/rules/prod", "team-a", "name: g\nrules:\n  - expr: up\n", 400, []string{"one of 'record' or 'alert' must be set"}},
		{"record and alert", "POST", "/api/v1/rules/prod", "team-a", "name: g\nrules:\n  - {record: r, alert: A, expr: up}\n", 400, []string{"only one of 'record' and 'alert' must be set"}},
		{"for in a recording rule", "POST", "/api/v1/rules/prod", "team-a", "name: g\nrules:\n  - {record: r, expr: up, for: 1m}\n", 400, []string{"invalid field 'for' in recording rule"}},
		{"bad recording rule name", "POST", "/api/v1/rules/prod", "team-a", "name: g\nrules:\n  - {record: 'r{a=\"b\"}', expr: up}\n", 400, []string{"braces present in the recording rule name"}},
		{"second rule names its index", "POST", "/api/v1/rules/prod", "team-a", "name: g\nrules:\n  - {record: a, expr: up}\n  - {alert: Second, expr: 'up +'}\n", 400, []string{`rule 2, "Second"`}},
		{"duplicate group", "POST", "/api/v1/rules/prod", "team-a", "groups:\n  - {name: g, rules: [{record: a, expr: up}]}\n  - {name: g, rules: [{record: b, expr: up}]}\n", 400,
			[]string{`rule group "g" is defined more than once`}},
		{"two documents", "POST", "/api/v1/rules/prod", "team-a", "name: g\nrules: [{record: a, expr: up}]\n---\nname: h\n", 400, []string{"more than one YAML document"}},
		{"namespace too long", "POST", "/api/v1/rules/" + strings.Repeat("n", MaxNameLength+1), "team-a", goodGroup, 400, []string{"the namespace is 256 bytes long, the limit is 255"}},
		{"body too large", "POST", "/api/v1/rules/prod", "team-a", big, 413, []string{"larger than"}},
		{"too many rules", "POST", "/api/v1/rules/prod", "team-a", "name: g\nrules: [{record: a, expr: up}, {record: b, expr: up}, {record: c, expr: up}]\n", 400,
			[]string{`rule group "g" has 3 rules, more than the limit of 2 rules per rule group`, limits.Source(limits.FlagRulerMaxRulesPerGroup)}},
		{"interval too short", "POST", "/api/v1/rules/prod", "team-a", "name: g\ninterval: 500ms\nrules: [{record: a, expr: up}]\n", 400,
			[]string{`rule group "g" has an evaluation interval 500ms, shorter than the minimum evaluation interval of 1s`, limits.Source(limits.FlagRulerMinEvalInterval)}},
		{"replacing a group does not count twice", "POST", "/api/v1/rules/prod", "team-a", strings.Replace(goodGroup, "5s", "6s", 1), 202, nil},
		{"third group", "POST", "/api/v1/rules/staging", "team-a", "name: g\nrules: [{record: a, expr: up}]\n", 202, nil},
		{"too many groups", "POST", "/api/v1/rules/staging", "team-a", "name: h\nrules: [{record: a, expr: up}]\n", 400,
			[]string{"tenant team-a would have 4 rule groups, more than the limit of 3", limits.Source(limits.FlagRulerMaxRuleGroups)}},
		{"a rule file replaces and adds", "POST", "/api/v1/rules/staging", "team-b", "groups:\n  - {name: g1, rules: [{record: a, expr: up}]}\n  - {name: g2, rules: [{record: b, expr: up}]}\n", 202, nil},
		{"wrong method", "PUT", "/api/v1/rules/prod", "team-a", goodGroup, 405, nil},

		{"delete missing group", "DELETE", "/api/v1/rules/prod/nope", "team-a", "", 404, []string{"group does not exist"}},
		{"delete group", "DELETE", "/api/v1/rules/prod/availability", "team-a", "", 202, []string{`"status":"success"`}},
		{"deleted group is gone", "GET", "/api/v1/rules/prod/availability", "team-a", "", 404, nil},
		{"delete missing namespace", "DELETE", "/api/v1/rules/prod", "team-a", "", 404, []string{"no rule groups found"}},
		{"delete namespace", "DELETE", "/prometheus/config/v1/rules/staging", "team-a", "", 202, nil},
		{"other tenant keeps its namespace", "GET", "/api/v1/rules/staging", "team-b", "", 200, []string{"name: g1", "name: g2"}},
	}
}

// TestStoredGroupsAreObjects checks the layout in the bucket and that a new
// ruler on the same bucket serves the same groups.
func TestStoredGroupsAreObjects(t *testing.T) {
	e := newEnv(t, testConfig(t), nil, nil)
	e.post("team-a", "prod", goodGroup)
	var names []string
	if err := e.bkt.Iter(t.Context(), "", bucket.IterOptions{Recursive: true}, func(n string) error {
		names = append(names, n)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := objectName("team-a", "prod", "availability"); len(names) != 1 || names[0] != want {
		t.Fatalf("objects %q, want [%s]", names, want)
	}
	if !strings.HasPrefix(names[0], "team-a/rules/") {
		t.Errorf("object %s is not under the tenant's prefix", names[0])
	}
	e.stop()

	e2 := newEnv(t, testConfig(t), nil, e.bkt)
	code, body := e2.do("GET", "/api/v1/rules", "team-a", "")
	var got map[string][]map[string]any
	if err := yaml.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil || len(got["prod"]) != 1 || got["prod"][0]["name"] != "availability" {
		t.Fatalf("after a restart: %d %s (%v)", code, body, err)
	}
}

func TestObjectNames(t *testing.T) {
	for _, n := range [][2]string{{"prod", "availability"}, {"..", "."}, {"a/b", "c/d"}, {".fluxpulse-tmp-x", "é ü 🎉"}, {strings.Repeat("x", MaxNameLength), strings.Repeat("y", MaxNameLength)}} {
		name := objectName(strings.Repeat("t", 150), n[0], n[1])
		if err := bucket.ValidateName(name); err != nil {
			t.Errorf("%q/%q: %v", n[0], n[1], err)
		}
		ns, g, ok := parseObjectName(strings.Repeat("t", 150), name)
		if !ok || ns != n[0] || g != n[1] {
			t.Errorf("%q/%q came back as %q/%q (%v)", n[0], n[1], ns, g, ok)
		}
	}
}

// TestRulesGuardPromQL is the regression test of #12 item 1 in the ruler:
// a rule's expr and the match[] of the rules listing go through the same
// guard as queries, before the parser sees them, and a stored group over
// the tenant's limits as they are now is skipped instead of parsed.
func TestRulesGuardPromQL(t *testing.T) {
	e := newEnv(t, testConfig(t), nil, nil)
	nested := func(n int) string { return strings.Repeat("(", n) + "1" + strings.Repeat(")", n) }
	group := func(name, expr string) string {
		return "name: " + name + "\nrules:\n  - record: x:y\n    expr: '" + expr + "'\n"
	}
	code, body := e.do(http.MethodPost, "/api/v1/rules/ns", "team-a", group("deep", nested(2000)))
	if code != http.StatusBadRequest || !strings.Contains(body, `the PromQL of rule 1 ("x:y") of group "deep" nests more than 64 levels deep, the limit of tenant team-a (-querier.max-query-expression-depth`) {
		t.Fatalf("POST a rule nested 2,000 deep: %d %s", code, body)
	}
	code, body = e.do(http.MethodPost, "/api/v1/rules/ns", "team-a", group("large", nested(40_000)))
	if code != http.StatusBadRequest || !strings.Contains(body, "is 80001 bytes, more than the limit of 65536 bytes of tenant team-a (-querier.max-query-expression-size-bytes") {
		t.Fatalf("POST a rule of 80 KB: %d %s", code, body)
	}
	code, body = e.do(http.MethodGet, "/prometheus/api/v1/rules?match[]="+url.QueryEscape(`{a="b"} + `+nested(2000)), "team-a", "")
	if code != http.StatusBadRequest || !strings.Contains(body, `"errorType":"bad_data"`) || !strings.Contains(body, "the PromQL of match[] nests more than 64 levels") {
		t.Fatalf("GET rules with match[] nested 2,000 deep: %d %s", code, body)
	}

	e.post("team-a", "ns", group("fine", nested(20)))
	e.post("team-a", "ns", group("flat", "1"))
	listed := func() (string, error) {
		code, body := e.do(http.MethodGet, "/prometheus/api/v1/rules", "team-a", "")
		if code != http.StatusOK {
			return "", fmt.Errorf("%d %s", code, body)
		}
		return body, nil
	}
	testbin.Eventually(t, 10*time.Second, func() error {
		if body, err := listed(); err != nil || !strings.Contains(body, `"fine"`) {
			return fmt.Errorf("group fine not loaded: %s %v", body, err)
		}
		return nil
	})
	lim := defaultLimits(t)
	lim.MaxQueryExpressionDepth = 10
	e.lim.Set(defaultLimits(t), map[string]limits.Limits{"team-a": lim})
	e.post("team-a", "ns", group("flat", "2")) // a change makes the ruler load again
	testbin.Eventually(t, 10*time.Second, func() error {
		if body, err := listed(); err != nil || strings.Contains(body, `"fine"`) || !strings.Contains(body, `"flat"`) {
			return fmt.Errorf("group fine still loaded, or flat gone: %s %v", body, err)
		}
		return nil
	})
}
