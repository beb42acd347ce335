package broker

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"

	"github.com/mcpgw/mcpgw/broker/upstream"
	"github.com/mcpgw/mcpgw/filter/config"
)

// registry mirrors every backend's catalog into the broker's mcp.Server:
// tools and prompts under the gateway names config.Names gives them (their
// prefixed name and their aliases, where the router routes those names to
// them: see exposeAs), resources and templates under their own URIs. It
// remembers which backend owns each exposed key, so that a backend's update
// only touches its own entries, and it only re-adds an entry whose
// definition changed, because every AddTool makes the go-sdk notify
// connected clients.
//
// registry is not safe for concurrent use; the Broker serializes calls.
type registry struct {
	server   *mcp.Server
	log      *slog.Logger
	handlers handlerFactory
	failures func() // counts a definition that could not be registered

	tools, prompts, resources, templates map[string]owner

	// exposed holds what each tool in tools was registered with, and views
	// the virtual servers' mcp.Servers by name: each mirrors the subset of
	// the exposed tools its virtual server lists.
	exposed map[string]exposedTool
	views   map[string]*view

	// names is the rule that gives gateway names to servers, the router's
	// too; servers is what it was made from.
	names   *config.Names
	servers []config.Server

	// shadowed holds, per backend and kind, the gateway names of its tools
	// and prompts that names gives to another server or item, so they are
	// not listed (each is logged when it becomes shadowed).
	shadowed map[shadowKey]map[string]shadowOwner

	// last is each backend's latest catalog, and conflicted the backends
	// that lost a key to another one: when keys are freed, those are synced
	// again so that they get the keys now available.
	last       map[string]upstream.Catalog
	conflicted map[string]bool
}

type shadowKey struct{ backend, kind string }

// shadowOwner is where the router sends a shadowed name: a server and its
// name for the item, or no server at all (a prefix alone names nothing).
type shadowOwner struct{ server, bare string }

// exposedTool is a tool as registered in the aggregated server.
type exposedTool struct {
	def *mcp.Tool
	h   mcp.ToolHandler
}

// view is a virtual server's mcp.Server. It registers the very definitions
// and handlers of the aggregated server, so a tool's identity (the *mcp.Tool)
// tells whether the view has its current version.
type view struct {
	server *mcp.Server
	want   map[string]bool      // the tool names the virtual server lists
	have   map[string]*mcp.Tool // what server has registered
}

// owner is the backend that owns an exposed key, the signature (JSON) of
// the definition registered for it, the backend's own name for it (the
// handler's target, which an alias can change while the definition stays)
// and how to register it again (relay).
type owner struct {
	backend  string
	sig      string
	orig     string
	register func() error
}

// handlerFactory makes the proxy handlers for one backend's items, given
// their unprefixed names.
type handlerFactory interface {
	tool(backend, name string) mcp.ToolHandler
	prompt(backend, name string) mcp.PromptHandler
	resource(backend string) mcp.ResourceHandler
}

func newRegistry(server *mcp.Server, log *slog.Logger, h handlerFactory, failures func()) *registry {
	return &registry{
		server: server, log: log, handlers: h, failures: failures,
		tools: map[string]owner{}, prompts: map[string]owner{},
		resources: map[string]owner{}, templates: map[string]owner{},
		exposed: map[string]exposedTool{}, views: map[string]*view{},
		names: config.NewNames(nil), shadowed: map[shadowKey]map[string]shadowOwner{},
		last: map[string]upstream.Catalog{}, conflicted: map[string]bool{},
	}
}

// item is one definition to expose under a key, with the backend's own name
// for it (used to build the handler).
type item[T any] struct {
	def  T
	orig string
}

// sync makes the exposed entries of backend match cat.
func (r *registry) sync(backend string, cat upstream.Catalog) {
	r.last[backend] = cat
	r.settle(r.apply(backend, cat))
	r.syncViews()
}

// setNames names every backend's tools and prompts by the prefixes and
// aliases of servers (the config's). When any of them changed, every
// backend is synced again: a name one server gains or loses can move to or
// from any other.
func (r *registry) setNames(servers []config.Server) {
	if sameNaming(r.servers, servers) {
		return
	}
	r.names, r.servers = config.NewNames(servers), slices.Clone(servers)
	for _, b := range slices.Sorted(maps.Keys(r.last)) {
		r.settle(r.apply(b, r.last[b]))
	}
	r.syncViews()
}

// sameNaming reports whether two server lists name tools and prompts the
// same way: the same servers, in the same order, with the same prefixes and
// aliases.
func sameNaming(a, b []config.Server) bool {
	return slices.EqualFunc(a, b, func(x, y config.Server) bool {
		return x.Name == y.Name && x.Prefix == y.Prefix && maps.Equal(x.Aliases, y.Aliases)
	})
}

// drop removes every entry of backend.
func (r *registry) drop(backend string) {
	delete(r.last, backend)
	delete(r.conflicted, backend)
	r.settle(r.apply(backend, upstream.Catalog{}))
	r.syncViews()
}

// settle gives the conflicted backends another chance once keys were freed.
func (r *registry) settle(freed bool) {
	if !freed {
		return
	}
	for _, b := range slices.Sorted(maps.Keys(r.conflicted)) {
		delete(r.conflicted, b)
		r.apply(b, r.last[b]) // only adds: it frees nothing
	}
}

// apply brings backend's entries to cat and reports whether it removed any.
func (r *registry) apply(backend string, cat upstream.Catalog) (freed bool) {
	// Each kind is applied first, then or-ed: none may be skipped.
	freed = r.applyTools(backend, cat.Tools)
	freed = r.applyPrompts(backend, cat.Prompts) || freed
	freed = r.applyResources(backend, cat.Resources) || freed
	freed = r.applyTemplates(backend, cat.ResourceTemplates) || freed
	return freed
}

// exposeAs returns a backend's tools or prompts by gateway name: each under
// every name config.Names offers it under (prefix+name, and the backend's
// aliases of it) that the router routes back to this backend and this
// item, and nowhere else, so that a listed name never runs elsewhere. The
// other names are shadowed: a name under another server's prefix, one that
// an alias takes, or a prefix alone. renamed returns a renamed copy: the
// catalog is shared.
func exposeAs[T any](r *registry, kind, backend string, defs []T, name func(T) string, renamed func(T, string) T) map[string]item[T] {
	want := make(map[string]item[T], len(defs))
	shadowed := map[string]shadowOwner{}
	if srv, ok := r.names.Index(backend); ok {
		for _, d := range defs {
			orig := name(d)
			for _, key := range r.names.Candidates(srv, orig) {
				owner, bare, ok := r.names.Resolve(key)
				if ok && owner == srv && bare == orig {
					want[key] = item[T]{renamed(d, key), orig}
					continue
				}
				shadowed[key] = shadowOwner{}
				if ok {
					shadowed[key] = shadowOwner{r.names.Server(owner), bare}
				}
			}
		}
	}
	r.setShadowed(shadowKey{backend, kind}, shadowed)
	return want
}

// setShadowed records the shadowed names of a backend's items of one kind,
// logging those that were not shadowed (or not that way) before.
func (r *registry) setShadowed(key shadowKey, now map[string]shadowOwner) {
	before := r.shadowed[key]
	for _, name := range slices.Sorted(maps.Keys(now)) {
		if o, seen := before[name]; !seen || o != now[name] {
			r.log.Warn("not listing a "+key.kind+" under a gateway name that routes elsewhere",
				"name", name, "server", key.backend, "routedTo", now[name].server, "routedToName", now[name].bare)
		}
	}
	if len(now) == 0 {
		delete(r.shadowed, key)
		return
	}
	r.shadowed[key] = now
}

// shadowedCounts returns how many tool and prompt names are shadowed.
func (r *registry) shadowedCounts() (tools, prompts int) {
	for key, names := range r.shadowed {
		if key.kind == "tool" {
			tools += len(names)
		} else {
			prompts += len(names)
		}
	}
	return tools, prompts
}

func toolName(t *mcp.Tool) string { return t.Name }

func renamedTool(t *mcp.Tool, name string) *mcp.Tool {
	c := *t
	c.Name = name
	return &c
}

func promptName(p *mcp.Prompt) string { return p.Name }

func renamedPrompt(p *mcp.Prompt, name string) *mcp.Prompt {
	c := *p
	c.Name = name
	return &c
}

func (r *registry) applyTools(backend string, tools []*mcp.Tool) bool {
	want := exposeAs(r, "tool", backend, tools, toolName, renamedTool)
	return syncKind(r, "tool", r.tools, backend, want, func(it item[*mcp.Tool]) error {
		h := r.handlers.tool(backend, it.orig)
		if err := addTool(r.server, it.def, h); err != nil {
			return err
		}
		r.exposed[it.def.Name] = exposedTool{it.def, h}
		return nil
	}, r.removeTools)
}

func (r *registry) removeTools(names ...string) {
	r.server.RemoveTools(names...)
	for _, n := range names {
		delete(r.exposed, n)
	}
}

// relay tells the clients of the lists backend announced a change of,
// when it has entries in them, that they changed, even though its entries
// look the same (see upstream.Options.OnListChanged). The go-sdk (v1.8.0)
// has no call that only sends list_changed, but it sends one to every
// session and listen subscriber whenever an entry is registered, without
// comparing it with the entry it replaces, and debounces those of a burst
// into one notification: so registering one of the backend's entries
// again announces its list, once. A virtual server is told when it offers
// one of the backend's tools.
func (r *registry) relay(backend string, lists upstream.Lists) {
	if lists.Has(upstream.ToolList) {
		r.reregister("tool", backend, r.tools)
		for _, name := range slices.Sorted(maps.Keys(r.views)) {
			v := r.views[name]
			for tool := range v.have { // v.have[tool] is r.exposed[tool].def: views are synced
				if r.tools[tool].backend == backend {
					cur := r.exposed[tool]
					if err := addTool(v.server, cur.def, cur.h); err != nil {
						r.log.Warn("relaying a list change failed", "kind", "tool", "name", tool, "virtualServer", name, "error", err)
					}
					break
				}
			}
		}
	}
	if lists.Has(upstream.PromptList) {
		r.reregister("prompt", backend, r.prompts)
	}
	// One resources/list_changed covers both lists.
	if lists.Has(upstream.ResourceList) && !r.reregister("resource", backend, r.resources) {
		r.reregister("resource template", backend, r.templates)
	}
}

// reregister registers one of backend's entries in owners again, reporting
// whether it has any. It cannot fail, having succeeded with the same
// definition, but is checked like any registration.
func (r *registry) reregister(kind, backend string, owners map[string]owner) bool {
	for key, o := range owners {
		if o.backend == backend {
			if err := o.register(); err != nil {
				r.log.Warn("relaying a list change failed", "kind", kind, "name", key, "server", backend, "error", err)
			}
			return true
		}
	}
	return false
}

// setView makes server the view of the named virtual server, offering the
// listed tools that are exposed now or later.
func (r *registry) setView(name string, server *mcp.Server, tools []string) {
	v := r.views[name]
	if v == nil || v.server != server {
		v = &view{server: server, have: map[string]*mcp.Tool{}}
		r.views[name] = v
	}
	v.want = make(map[string]bool, len(tools))
	for _, t := range tools {
		v.want[t] = true
	}
	r.syncView(name, v)
}

// dropView forgets a virtual server; its server is the caller's to close.
func (r *registry) dropView(name string) { delete(r.views, name) }

// viewTools returns how many tools the named view offers now.
func (r *registry) viewTools(name string) int {
	if v := r.views[name]; v != nil {
		return len(v.have)
	}
	return 0
}

func (r *registry) syncViews() {
	for _, name := range slices.Sorted(maps.Keys(r.views)) {
		r.syncView(name, r.views[name])
	}
}

// syncView brings a view to the exposed tools it wants, touching only the
// entries that changed: each AddTool and RemoveTools notifies its clients.
func (r *registry) syncView(name string, v *view) {
	var stale []string
	for tool, def := range v.have {
		if cur, ok := r.exposed[tool]; !ok || !v.want[tool] || cur.def != def {
			stale = append(stale, tool)
			delete(v.have, tool)
		}
	}
	if len(stale) > 0 {
		// Changed definitions too: AddTool would replace them, but only
		// if it succeeds, and a stale one must not stay listed.
		v.server.RemoveTools(stale...)
	}
	for _, tool := range slices.Sorted(maps.Keys(v.want)) {
		cur, ok := r.exposed[tool]
		if !ok || v.have[tool] != nil {
			continue
		}
		if err := addTool(v.server, cur.def, cur.h); err != nil {
			r.reject("tool", tool, "virtual server "+name, err)
			continue
		}
		v.have[tool] = cur.def
	}
}

func (r *registry) applyPrompts(backend string, prompts []*mcp.Prompt) bool {
	want := exposeAs(r, "prompt", backend, prompts, promptName, renamedPrompt)
	return syncKind(r, "prompt", r.prompts, backend, want, func(it item[*mcp.Prompt]) error {
		return catch(func() { r.server.AddPrompt(it.def, r.handlers.prompt(backend, it.orig)) })
	}, r.server.RemovePrompts)
}

func (r *registry) applyResources(backend string, resources []*mcp.Resource) bool {
	want := map[string]item[*mcp.Resource]{}
	for _, res := range resources {
		want[res.URI] = item[*mcp.Resource]{res, res.URI}
	}
	return syncKind(r, "resource", r.resources, backend, want, func(it item[*mcp.Resource]) error {
		return catch(func() { r.server.AddResource(it.def, r.handlers.resource(backend)) })
	}, r.server.RemoveResources)
}

func (r *registry) applyTemplates(backend string, templates []*mcp.ResourceTemplate) bool {
	want := map[string]item[*mcp.ResourceTemplate]{}
	for _, rt := range templates {
		want[rt.URITemplate] = item[*mcp.ResourceTemplate]{rt, rt.URITemplate}
	}
	return syncKind(r, "resource template", r.templates, backend, want, func(it item[*mcp.ResourceTemplate]) error {
		return catch(func() { r.server.AddResourceTemplate(it.def, r.handlers.resource(backend)) })
	}, r.server.RemoveResourceTemplates)
}

// counts returns how many tools, prompts, resources and templates are exposed.
func (r *registry) counts() (tools, prompts, resources, templates int) {
	return len(r.tools), len(r.prompts), len(r.resources), len(r.templates)
}

// syncKind brings backend's entries in owners to want: it removes the stale
// ones, then adds the new and changed ones. A key owned by another backend
// is left alone (the first owner wins) and reported: a resource URI two
// backends have, or a tool or prompt name in the moment a new naming moves
// it (setNames syncs its old owner too, which frees it).
func syncKind[T any](r *registry, kind string, owners map[string]owner, backend string,
	want map[string]item[T], add func(item[T]) error, remove func(...string)) (freed bool) {
	var stale []string
	for key, o := range owners {
		if _, ok := want[key]; o.backend == backend && !ok {
			stale = append(stale, key)
			delete(owners, key)
		}
	}
	if len(stale) > 0 {
		remove(stale...)
		freed = true
	}
	for _, key := range slices.Sorted(maps.Keys(want)) {
		it := want[key]
		sig, err := json.Marshal(it.def)
		if err != nil {
			r.reject(kind, key, backend, err)
			continue
		}
		o, taken := owners[key]
		if taken && o.backend != backend {
			r.conflicted[backend] = true
			r.reject(kind, key, backend, fmt.Errorf("already provided by server %q", o.backend))
			continue
		}
		if taken && o.sig == string(sig) && o.orig == it.orig {
			continue
		}
		if err := add(it); err != nil {
			r.reject(kind, key, backend, err)
			if taken { // the old definition is still registered: withdraw it
				delete(owners, key)
				remove(key)
				freed = true
			}
			continue
		}
		owners[key] = owner{backend: backend, sig: string(sig), orig: it.orig, register: func() error { return add(it) }}
	}
	return freed
}

func (r *registry) reject(kind, key, backend string, err error) {
	r.failures()
	r.log.Warn("skipping a "+kind+" that cannot be exposed", "name", key, "server", backend, "error", err)
}

// addTool registers a backend tool. The go-sdk panics on a definition it
// cannot serve (e.g. an input schema that is not an object); a backend must
// not be able to crash the broker that way, so the panic becomes an error.
func addTool(s *mcp.Server, t *mcp.Tool, h mcp.ToolHandler) error {
	if t.InputSchema == nil {
		return fmt.Errorf("tool %q has no input schema", t.Name)
	}
	return catch(func() { s.AddTool(t, h) })
}

// catch runs f and turns a panic into an error.
func catch(f func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("rejected by the MCP server: %v", p)
		}
	}()
	f()
	return nil
}

// promptOwner returns the backend that owns the exposed prompt name (a
// prefixed name or an alias), and the backend's own name for it: the
// server and name config.Names gives it, as for prompts/get, since only
// those are exposed.
func (r *registry) promptOwner(name string) (backend, orig string, ok bool) {
	o, ok := r.prompts[name]
	return o.backend, o.orig, ok
}

// resourceOwner returns the backend that owns uri: an exposed resource, a
// resource template given as is (as in a completion's ref/resource), or a
// URI one template matches (the first, in template order).
func (r *registry) resourceOwner(uri string) (backend string, ok bool) {
	if o, ok := r.resources[uri]; ok {
		return o.backend, true
	}
	if o, ok := r.templates[uri]; ok {
		return o.backend, true
	}
	for _, tmpl := range slices.Sorted(maps.Keys(r.templates)) {
		t, err := uritemplate.New(tmpl)
		if err == nil && t.Regexp().MatchString(uri) {
			return r.templates[tmpl].backend, true
		}
	}
	return "", false
}
