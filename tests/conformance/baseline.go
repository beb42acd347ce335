package conformance

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// baselineFile is the suite's --expected-failures format.
type baselineFile struct {
	Server []string `json:"server"`
	Client []string `json:"client,omitempty"`
}

func readBaseline(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f baselineFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := slices.Clone(f.Server)
	sort.Strings(s)
	return slices.Compact(s), nil
}

// writeBaseline rewrites path with the given failing scenarios, keeping the
// comment lines written by hand above each entry ("# why" lines directly
// before "  - name").
func writeBaseline(path, runName string, failing []string) error {
	why := map[string][]string{}
	var header []string
	if old, err := os.ReadFile(path); err == nil {
		var pending []string
		inHeader := true
		for _, line := range strings.Split(string(old), "\n") {
			trimmed := strings.TrimSpace(line)
			switch {
			case inHeader && strings.HasPrefix(line, "#"):
				header = append(header, line)
			case strings.HasPrefix(trimmed, "#"):
				inHeader = false
				pending = append(pending, trimmed)
			case strings.HasPrefix(trimmed, "- "):
				inHeader = false
				why[strings.TrimSpace(strings.TrimPrefix(trimmed, "- "))] = pending
				pending = nil
			default:
				if trimmed != "" {
					inHeader = false
				}
				if trimmed == "" {
					pending = nil
				}
			}
		}
	}
	var b strings.Builder
	if len(header) == 0 {
		header = []string{fmt.Sprintf("# Expected failures of conformance run %q (tests/conformance; the suite's --expected-failures format).", runName)}
	}
	for _, h := range header {
		b.WriteString(h + "\n")
	}
	if len(failing) == 0 {
		b.WriteString("server: []\n")
	} else {
		b.WriteString("server:\n")
		for _, name := range failing {
			for _, c := range why[name] {
				b.WriteString("  " + c + "\n")
			}
			b.WriteString("  - " + name + "\n")
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
