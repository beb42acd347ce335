package config

import (
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"
)

// maxNameLen bounds alias names and their targets: MCP recommends tool
// names of at most 128 characters (2025-11-25, server/tools "Tool Names"),
// and a name also travels in a request header (HeaderToolName).
const maxNameLen = 128

// validateAliases checks s.Aliases; aliases maps every alias name seen so far
// to the index of its server.
//
// Precedence: an alias is matched by its exact name before any prefix is
// tried (Names.Resolve), in the router and in the broker's lists alike. An
// alias inside another server's prefix, which would capture that server's
// names, is refused (validateNameOverlaps); what an alias can still shadow
// is a name of the unprefixed server, or another name of its own server.
// Because the backends' tool names are not known when the config is read,
// such a shadowing cannot be rejected here; the broker then does not list
// the shadowed name. Uniqueness among aliases is checked here, since two
// servers could not both own one.
func (s *Server) validateAliases(i int, aliases map[string]int) []error {
	var errs []error
	// Sorted, so that the errors come out in the same order every time.
	for _, alias := range slices.Sorted(maps.Keys(s.Aliases)) {
		at := fmt.Sprintf("servers[%d].aliases[%q]", i, alias)
		if err := validateName(alias); err != nil {
			errs = append(errs, fmt.Errorf("%s: alias %w", at, err))
		} else if j, dup := aliases[alias]; dup {
			errs = append(errs, fmt.Errorf("%s: already an alias of servers[%d]", at, j))
		} else {
			aliases[alias] = i
		}
		if err := validateName(s.Aliases[alias]); err != nil {
			errs = append(errs, fmt.Errorf("%s: target %w", at, err))
		}
	}
	return errs
}

// validateName accepts a tool or prompt name the router can pass on
// verbatim: control characters could inject headers (HeaderToolName), and
// invalid UTF-8 would not survive a JSON round trip unchanged.
func validateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("name is empty")
	case len(name) > maxNameLen:
		return fmt.Errorf("name is longer than %d bytes", maxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("name is not valid UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("name contains control character %U", r)
		}
	}
	return nil
}
