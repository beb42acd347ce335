package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Names is the one rule by which gateway tool and prompt names belong to
// servers. The router routes tools/call and prompts/get by Resolve; the
// broker lists a backend's tool or prompt under a gateway name only where
// Resolve maps that name back to exactly that server and that backend name.
// So a client can never be listed one server's definition of a name that
// runs on another: a name that resolves elsewhere is shadowed, not listed.
//
// Resolve tries, in order:
//
//  1. the aliases of every server (exact names, Server.Aliases);
//  2. the longest prefix that begins the name and leaves a non-empty rest:
//     in a valid config, whose non-empty prefixes do not overlap, the one
//     non-empty prefix that matches, else the empty prefix, if a server
//     has it.
//
// A Names is immutable and safe for concurrent use.
type Names struct {
	servers    []string              // server names by index
	index      map[string]int        // server name → index
	prefixOf   []string              // server index → its prefix
	aliasesOf  []map[string][]string // server index → backend name → its aliases, sorted
	aliases    map[string]target     // alias → where it leads
	prefixes   map[string]int        // prefix → server index
	prefixLens []int                 // distinct prefix lengths, longest first
}

// target is a server (by index) and the server's own name for an item.
type target struct {
	server int
	bare   string
}

// NewNames compiles the naming of servers; server indexes in its answers
// are indexes into servers. Built from a config that failed Validate (two
// servers with one prefix or one alias), the later server wins the name,
// so readers of the same servers still agree.
func NewNames(servers []Server) *Names {
	n := &Names{
		servers:   make([]string, len(servers)),
		index:     make(map[string]int, len(servers)),
		prefixOf:  make([]string, len(servers)),
		aliasesOf: make([]map[string][]string, len(servers)),
		aliases:   map[string]target{},
		prefixes:  make(map[string]int, len(servers)),
	}
	lens := map[int]bool{}
	for i := range servers {
		s := &servers[i]
		n.servers[i], n.prefixOf[i] = s.Name, s.Prefix
		n.index[s.Name] = i
		n.prefixes[s.Prefix] = i
		lens[len(s.Prefix)] = true
		n.aliasesOf[i] = map[string][]string{}
		for alias, bare := range s.Aliases {
			n.aliases[alias] = target{i, bare}
			if alias != s.Prefix+bare { // already the first candidate
				n.aliasesOf[i][bare] = append(n.aliasesOf[i][bare], alias)
			}
		}
		for _, as := range n.aliasesOf[i] {
			slices.Sort(as)
		}
	}
	n.prefixLens = slices.Sorted(maps.Keys(lens))
	slices.Reverse(n.prefixLens)
	return n
}

// Resolve returns the server that owns the gateway name, and the server's
// own name for the tool or prompt: an alias's target, or else the name
// without the server's prefix. ok is false when no server owns the name.
// It does not allocate (the router calls it for every routed request).
func (n *Names) Resolve(name string) (server int, bare string, ok bool) {
	if a, ok := n.aliases[name]; ok {
		return a.server, a.bare, true
	}
	for _, l := range n.prefixLens {
		if l >= len(name) {
			continue // an empty remainder is not a tool name
		}
		if i, ok := n.prefixes[name[:l]]; ok {
			return i, name[l:], true
		}
	}
	return 0, "", false
}

// Candidates returns the gateway names under which the server would offer
// its tool or prompt bare: its prefix followed by bare, then its aliases of
// bare in name order. Each is that item's gateway name only if Resolve maps
// it back to (server, bare); the others are shadowed by another server's
// name or alias (or by another alias of the same server), and must not be
// listed.
func (n *Names) Candidates(server int, bare string) []string {
	return append([]string{n.prefixOf[server] + bare}, n.aliasesOf[server][bare]...)
}

// Index returns the index of the named server.
func (n *Names) Index(serverName string) (int, bool) {
	i, ok := n.index[serverName]
	return i, ok
}

// Server returns the name of the server at index i.
func (n *Names) Server(i int) string { return n.servers[i] }

// InPrefix reports whether prefix is not empty and name begins with it:
// whether the server with that prefix claims name. Validate refuses two
// servers whose prefixes are in each other's (they overlap) and an alias in
// another server's prefix (it would capture that server's names); the
// controller, which decides who keeps a contested name, applies the same
// test. The empty prefix claims only what no other prefix or alias does, so
// it conflicts with nothing.
func InPrefix(name, prefix string) bool {
	return prefix != "" && strings.HasPrefix(name, prefix)
}

// validateNameOverlaps reports the prefixes and aliases that would let one
// server's names be taken by another: non-empty prefixes that overlap
// (Resolve would give the longer one every name both match, so adding a
// server could silently move a name another server serves), and aliases
// inside another server's prefix. Equal prefixes and aliases are reported
// by Server.validate and validateAliases. Each name is checked against its
// own beginnings, not against every other server, so a config with many
// servers and aliases is checked in linear time.
func validateNameOverlaps(servers []Server) []error {
	first := map[string]int{} // non-empty prefix → the first server with it
	for i, s := range servers {
		if _, dup := first[s.Prefix]; s.Prefix != "" && !dup {
			first[s.Prefix] = i
		}
	}
	// owner returns a server other than self whose prefix begins name and
	// is at most upTo bytes long.
	owner := func(name string, upTo, self int) (int, bool) {
		for l := 1; l <= min(upTo, len(name)); l++ {
			if i, ok := first[name[:l]]; ok && i != self {
				return i, true
			}
		}
		return 0, false
	}
	var errs []error
	for j, s := range servers {
		if i, ok := owner(s.Prefix, len(s.Prefix)-1, j); ok {
			errs = append(errs, fmt.Errorf("servers[%d].prefix: %q overlaps servers[%d].prefix %q (server %q): one begins with the other, so both would claim names such as %q",
				j, s.Prefix, i, servers[i].Prefix, servers[i].Name, s.Prefix+"x"))
		}
		for _, alias := range slices.Sorted(maps.Keys(s.Aliases)) {
			if i, ok := owner(alias, len(alias), j); ok {
				errs = append(errs, fmt.Errorf("servers[%d].aliases[%q]: alias is inside servers[%d].prefix %q (server %q) and would capture that server's names",
					j, alias, i, servers[i].Prefix, servers[i].Name))
			}
		}
	}
	return errs
}
