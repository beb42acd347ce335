package config

import (
	"slices"
	"testing"
)

// namesUnderTest: a prefixed server with aliases, another prefixed one, and
// the unprefixed fallback.
func namesUnderTest() *Names {
	return NewNames([]Server{
		{Name: "weather", Prefix: "weather_", Aliases: map[string]string{"forecast": "get_forecast", "weather_today": "now", "now": "now"}},
		{Name: "gh", Prefix: "gh_"},
		{Name: "everything", Prefix: ""},
	})
}

func TestNamesResolve(t *testing.T) {
	n := namesUnderTest()
	for _, tt := range []struct {
		name, server, bare string // server "" means no owner
	}{
		{"weather_now", "weather", "now"},
		{"forecast", "weather", "get_forecast"},      // an alias, before the empty prefix
		{"weather_today", "weather", "now"},          // an alias, before the own prefix
		{"now", "weather", "now"},                    // an alias with the backend's own name
		{"gh_issue", "gh", "issue"},                  // another prefix
		{"gh_", "everything", "gh_"},                 // a prefix alone names nothing of its server's
		{"weather_alerts_x", "weather", "alerts_x"},  // under one prefix only
		{"search", "everything", "search"},           // the fallback
		{"Weather_now", "everything", "Weather_now"}, // prefixes are case-sensitive
		{"", "", ""},                         // nobody's
		{"weather", "everything", "weather"}, // not the whole prefix
		{"weather_get_forecast", "weather", "get_forecast"},
	} {
		i, bare, ok := n.Resolve(tt.name)
		got := ""
		if ok {
			got = n.Server(i)
		}
		if got != tt.server || bare != tt.bare {
			t.Errorf("Resolve(%q) = %q, %q; want %q, %q", tt.name, got, bare, tt.server, tt.bare)
		}
	}
	if _, _, ok := NewNames([]Server{{Name: "a", Prefix: "a_"}}).Resolve("b_x"); ok {
		t.Error("without an unprefixed server, a name under no prefix resolved")
	}
	if allocs := testing.AllocsPerRun(100, func() { n.Resolve("gh_issue"); n.Resolve("forecast"); n.Resolve("x") }); allocs != 0 {
		t.Errorf("Resolve allocates %v times", allocs)
	}
}

// TestNamesCandidates: what a server offers its items under, and which of
// those resolve back to it (the names the broker may list).
func TestNamesCandidates(t *testing.T) {
	n := namesUnderTest()
	weather, _ := n.Index("weather")
	everything, _ := n.Index("everything")
	for _, tt := range []struct {
		server     int
		bare       string
		candidates []string
		exposed    []string // those that Resolve maps back
	}{
		{weather, "now", []string{"weather_now", "now", "weather_today"}, []string{"weather_now", "now", "weather_today"}},
		{weather, "get_forecast", []string{"weather_get_forecast", "forecast"}, []string{"weather_get_forecast", "forecast"}},
		{weather, "today", []string{"weather_today"}, nil}, // shadowed by its own server's alias
		{everything, "search", []string{"search"}, []string{"search"}},
		{everything, "gh_issue", []string{"gh_issue"}, nil}, // gh's
		{everything, "forecast", []string{"forecast"}, nil}, // weather's alias
		{everything, "gh_", []string{"gh_"}, []string{"gh_"}},
	} {
		got := n.Candidates(tt.server, tt.bare)
		if !slices.Equal(got, tt.candidates) {
			t.Errorf("Candidates(%s, %q) = %q, want %q", n.Server(tt.server), tt.bare, got, tt.candidates)
		}
		var exposed []string
		for _, name := range got {
			if i, bare, ok := n.Resolve(name); ok && i == tt.server && bare == tt.bare {
				exposed = append(exposed, name)
			}
		}
		if !slices.Equal(exposed, tt.exposed) {
			t.Errorf("exposed(%s, %q) = %q, want %q", n.Server(tt.server), tt.bare, exposed, tt.exposed)
		}
	}
	if _, ok := n.Index("nobody"); ok {
		t.Error("Index of an unknown server succeeded")
	}
}

// TestNamesInvalidConfig: servers that failed Validate still resolve
// deterministically, the later server winning a contested name, so that
// every reader of the same servers agrees.
func TestNamesInvalidConfig(t *testing.T) {
	n := NewNames([]Server{
		{Name: "one", Prefix: "p_", Aliases: map[string]string{"x": "x1"}},
		{Name: "two", Prefix: "p_", Aliases: map[string]string{"x": "x2"}},
		{Name: "long", Prefix: "p_q_"},
	})
	for name, want := range map[string]string{"x": "two/x2", "p_y": "two/y", "p_q_y": "long/y"} {
		i, bare, ok := n.Resolve(name)
		if got := n.Server(i) + "/" + bare; !ok || got != want {
			t.Errorf("Resolve(%q) = %s, %v; want %s", name, got, ok, want)
		}
	}
}

func TestInPrefix(t *testing.T) {
	for _, tt := range []struct {
		name, prefix string
		want         bool
	}{
		{"weather_x", "weather_", true},
		{"weather_", "weather_", true},
		{"weather", "weather_", false},
		{"x", "", false}, // the empty prefix claims nothing from others
		{"", "", false},
	} {
		if got := InPrefix(tt.name, tt.prefix); got != tt.want {
			t.Errorf("InPrefix(%q, %q) = %v", tt.name, tt.prefix, got)
		}
	}
}
