package broker

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"

	"github.com/mcpgw/mcpgw/broker/upstream"
)

// registry mirrors every backend's catalog into the broker's mcp.Server:
// tools and prompts under prefix+name, resources and templates under their
// own URIs. It remembers which backend owns each exposed key, so that a
// backend's update only touches its own entries, and it only re-adds an
// entry whose definition changed, because every AddTool makes the go-sdk
// notify connected clients.
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

	// last is each backend's latest catalog and prefix, and conflicted the
	// backends that lost a key to another one: when keys are freed, those
	// are synced again so that they get the keys now available.
	last       map[string]source
	conflicted map[string]bool
}

type source struct {
	prefix string
	cat    upstream.Catalog
}

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

// owner is the backend that owns an exposed key, and the signature (JSON)
// of the definition registered for it.
type owner struct {
	backend string
	sig     string
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
		last: map[string]source{}, conflicted: map[string]bool{},
	}
}

// item is one definition to expose under a key, with the backend's own name
// for it (used to build the handler).
type item[T any] struct {
	def  T
	orig string
}

// sync makes the exposed entries of backend match cat.
func (r *registry) sync(backend, prefix string, cat upstream.Catalog) {
	r.last[backend] = source{prefix, cat}
	r.settle(r.apply(backend, prefix, cat))
	r.syncViews()
}

// drop removes every entry of backend.
func (r *registry) drop(backend string) {
	delete(r.last, backend)
	delete(r.conflicted, backend)
	r.settle(r.apply(backend, "", upstream.Catalog{}))
	r.syncViews()
}

// settle gives the conflicted backends another chance once keys were freed.
func (r *registry) settle(freed bool) {
	if !freed {
		return
	}
	for _, b := range slices.Sorted(maps.Keys(r.conflicted)) {
		delete(r.conflicted, b)
		src := r.last[b]
		r.apply(b, src.prefix, src.cat) // only adds: it frees nothing
	}
}

// apply brings backend's entries to cat and reports whether it removed any.
func (r *registry) apply(backend, prefix string, cat upstream.Catalog) (freed bool) {
	// Each kind is applied first, then or-ed: none may be skipped.
	freed = r.applyTools(backend, prefix, cat.Tools)
	freed = r.applyPrompts(backend, prefix, cat.Prompts) || freed
	freed = r.applyResources(backend, cat.Resources) || freed
	freed = r.applyTemplates(backend, cat.ResourceTemplates) || freed
	return freed
}

func (r *registry) applyTools(backend, prefix string, tools []*mcp.Tool) bool {
	want := map[string]item[*mcp.Tool]{}
	for _, t := range tools {
		c := *t // the catalog is shared: rename a copy
		c.Name = prefix + t.Name
		want[c.Name] = item[*mcp.Tool]{&c, t.Name}
	}
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

func (r *registry) applyPrompts(backend, prefix string, prompts []*mcp.Prompt) bool {
	want := map[string]item[*mcp.Prompt]{}
	for _, p := range prompts {
		c := *p
		c.Name = prefix + p.Name
		want[c.Name] = item[*mcp.Prompt]{&c, p.Name}
	}
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
// is left alone (the first owner wins) and reported.
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
		if taken && o.sig == string(sig) {
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
		owners[key] = owner{backend: backend, sig: string(sig)}
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

// promptOwner returns the backend that owns the exposed prompt name, and
// the backend's own name for it.
func (r *registry) promptOwner(name string) (backend, orig string, ok bool) {
	o, ok := r.prompts[name]
	if !ok {
		return "", "", false
	}
	prefix := r.last[o.backend].prefix
	if !strings.HasPrefix(name, prefix) { // cannot happen: exposed as prefix+name
		return "", "", false
	}
	return o.backend, name[len(prefix):], true
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
