// Package config is the contract between the mcpgw controller (which writes
// the config file), the broker and the in-Envoy router (which read it).
//
// The contract is plain data: the types below, Parse/Load and Validate.
// Readers that want live updates use Watch, which keeps the last good config
// whenever the file is invalid or half-written.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Version is the only schema version this package understands.
const Version = "mcpgw/v1"

// Defaults applied by Parse when a field is left empty.
const (
	DefaultMaxRequestBodyBytes = 1 << 20 // 1 MiB
	DefaultMaxSessions         = 100_000
	DefaultCredentialHeader    = "Authorization"
)

// Config is the whole watched file.
type Config struct {
	// Version must be "mcpgw/v1".
	Version string `json:"version"`
	// Gateway holds settings shared by the router and the broker.
	Gateway Gateway `json:"gateway"`
	// Servers are the backend MCP servers behind the gateway.
	Servers []Server `json:"servers"`
	// VirtualServers are named subsets of the servers' tools, each offered
	// to clients as an MCP server of its own at
	// EndpointPath/<name> (see VirtualServer).
	VirtualServers []VirtualServer `json:"virtualServers,omitempty"`
}

// Gateway holds gateway-wide settings.
type Gateway struct {
	// SessionKey is the HMAC key the broker signs gateway session ids with and
	// the router verifies them with. It is given by reference and must resolve
	// to at least 32 bytes.
	SessionKey SecretRef `json:"sessionKey"`
	// PreviousSessionKeys verify gateway session ids but never sign new
	// ones: with SessionKey they form the key ring. They rotate the key on
	// every replica alike: add the new key here, then (once every reader
	// has it) make it SessionKey and move the old one here, and remove that
	// one after SessionMaxLifetime. Each must resolve to at least 32 bytes.
	PreviousSessionKeys []SecretRef `json:"previousSessionKeys,omitempty"`
	// SessionKeyGracePeriod is how long a broker or router that sees
	// SessionKey's value change (its file rewritten) keeps verifying ids
	// signed with the old value (default 1h; "0s": not at all, e.g. after
	// a leak). Each process counts from when it noticed the change; prefer
	// PreviousSessionKeys for a rotation all replicas agree on.
	SessionKeyGracePeriod Duration `json:"sessionKeyGracePeriod,omitempty"`
	// SessionMaxLifetime bounds a gateway session's life from when its id
	// was issued (default 24h, at least 1s): the router and the broker both
	// refuse an older id with 404, and the client initializes again. It
	// also bounds how long a terminated session must be remembered.
	SessionMaxLifetime Duration `json:"sessionMaxLifetime,omitempty"`
	// BrokerURL is the broker's base URL as the routers reach it, e.g.
	// "http://mcpgw-broker.mcpgw-system.svc:8090". Each router follows the
	// broker's revocation feed there (RevocationsPath), so that a session
	// the broker terminated (DELETE through any replica, idle expiry, a
	// broker restart) gets 404 on routed calls too, within a moment. Empty:
	// routers learn only of the DELETEs they forward themselves, and other
	// terminated sessions stay usable for routed calls until
	// SessionMaxLifetime.
	BrokerURL string `json:"brokerURL,omitempty"`
	// MaxRequestBodyBytes bounds the JSON-RPC request body the router reads
	// (default 1 MiB). Larger bodies get HTTP 413.
	MaxRequestBodyBytes int `json:"maxRequestBodyBytes,omitempty"`
	// MaxSessions bounds the number of gateway sessions whose backend sessions
	// the router remembers (default 100000, least recently used evicted).
	MaxSessions int `json:"maxSessions,omitempty"`
	// AllowedOrigins lists the exact origins ("scheme://host[:port]", e.g.
	// "http://localhost:6274") whose browsers may call the gateway. A
	// request with an Origin header not in the list gets HTTP 403, as MCP
	// requires against DNS rebinding (2025-11-25, transports: "Security
	// Warning"). Requests without Origin (non-browser clients) are always
	// allowed. Unset: only loopback origins (http or https, host localhost,
	// 127.0.0.1 or [::1], any port) are allowed.
	AllowedOrigins []string `json:"allowedOrigins,omitempty"`
}

// Server is one backend MCP server.
type Server struct {
	// Name is unique, conventionally "namespace/name".
	Name string `json:"name"`
	// URL is the backend's Streamable HTTP MCP endpoint, e.g.
	// "http://weather.default.svc:8080/mcp".
	URL string `json:"url"`
	// Hostname is the :authority the router sets on calls routed to this
	// server, so that Envoy's route table (e.g. an HTTPRoute) picks its backend.
	Hostname string `json:"hostname"`
	// Prefix is prepended to the server's tool and prompt names in the
	// aggregated lists, and a called name that begins with it is routed to
	// the server (see Names). Two servers' prefixes must not overlap (one
	// begin with the other, as "weather_" and "weather_alerts_" do): the
	// longer would take names the shorter one's server serves. It may be
	// empty for at most one server, which then gets every name no other
	// prefix or alias claims; that server's own names that begin with
	// another server's prefix or equal an alias are not listed (shadowed).
	Prefix string `json:"prefix"`
	// Aliases map extra gateway names to the server's own (unprefixed)
	// tool or prompt names: {"test_simple_text": "test_simple_text"}
	// offers the backend's test_simple_text under that exact name as well
	// as under Prefix+"test_simple_text". They exist for clients that call
	// fixed names and cannot be taught a prefix. An alias name is unique
	// across all servers, must not begin with another server's (non-empty)
	// prefix, whose names it would capture, and, for an exact match, takes
	// precedence over every prefix (see Names).
	Aliases map[string]string `json:"aliases,omitempty"`
	// Credential, if set, is sent to the backend on every request.
	Credential *Credential `json:"credential,omitempty"`
	// Stateless declares that the backend serves the stateless protocol
	// era (2026-07-28): the router then sends it the tools/call and
	// prompts/get of stateless-era clients directly, as they are. Otherwise
	// (a session-era backend, the default) those calls go to the broker,
	// which forwards them over its own session with the backend.
	Stateless bool `json:"stateless,omitempty"`
}

// Credential is a header value given by reference, never inline, so that the
// config file can be logged and stored without leaking secrets.
type Credential struct {
	// Header is the request header to set (default "Authorization").
	Header string `json:"header,omitempty"`
	SecretRef
}

// SecretRef points at a secret value: exactly one of Env or File.
type SecretRef struct {
	// Env names an environment variable of the reading process.
	Env string `json:"env,omitempty"`
	// File is a path whose content (trailing newline trimmed) is the value;
	// a relative path is relative to the config file's directory.
	File string `json:"file,omitempty"`
}

// Resolve returns the referenced value. Errors never contain the value.
func (r SecretRef) Resolve() (string, error) {
	switch {
	case r.Env != "" && r.File != "":
		return "", errors.New("set only one of env and file")
	case r.Env != "":
		v, ok := os.LookupEnv(r.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %q is not set", r.Env)
		}
		return v, nil
	case r.File != "":
		b, err := os.ReadFile(r.File)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("secret file %q is empty", r.File)
		}
		return v, nil
	default:
		return "", errors.New("set one of env and file")
	}
}

// HeaderName returns the header the credential is sent in.
func (c *Credential) HeaderName() string {
	if c.Header == "" {
		return DefaultCredentialHeader
	}
	return c.Header
}

// Load reads, parses and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.resolveRelativeFiles(filepath.Dir(path))
	return c, nil
}

// resolveRelativeFiles makes relative secret file paths relative to the
// config file's directory, so a config and its secrets can move together.
func (c *Config) resolveRelativeFiles(dir string) {
	abs := func(r *SecretRef) {
		if r.File != "" && !filepath.IsAbs(r.File) {
			r.File = filepath.Join(dir, r.File)
		}
	}
	for _, r := range c.secretRefs() {
		abs(r)
	}
}

// secretRefs returns every secret reference of the config: the session
// keys, then the servers' credentials.
func (c *Config) secretRefs() []*SecretRef {
	refs := []*SecretRef{&c.Gateway.SessionKey}
	for i := range c.Gateway.PreviousSessionKeys {
		refs = append(refs, &c.Gateway.PreviousSessionKeys[i])
	}
	for i := range c.Servers {
		if c.Servers[i].Credential != nil {
			refs = append(refs, &c.Servers[i].Credential.SecretRef)
		}
	}
	return refs
}

// Parse decodes YAML or JSON, rejects unknown fields, applies defaults and
// validates the result.
func Parse(data []byte) (*Config, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("config is empty")
	}
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) applyDefaults() {
	if c.Gateway.MaxRequestBodyBytes == 0 {
		c.Gateway.MaxRequestBodyBytes = DefaultMaxRequestBodyBytes
	}
	if c.Gateway.MaxSessions == 0 {
		c.Gateway.MaxSessions = DefaultMaxSessions
	}
}

// prefixPattern keeps prefixes to characters valid in MCP tool names, so a
// prefixed name is still a valid name.
var prefixPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]*$`)

// hostnamePattern accepts a DNS name with an optional port.
var hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$`)

// Validate reports every problem in the config at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Version != Version {
		errs = append(errs, fmt.Errorf("version: got %q, want %q", c.Version, Version))
	}
	if err := c.Gateway.SessionKey.validate(); err != nil {
		errs = append(errs, fmt.Errorf("gateway.sessionKey: %w", err))
	}
	errs = append(errs, c.Gateway.validateSessions()...)
	if c.Gateway.MaxRequestBodyBytes < 0 {
		errs = append(errs, errors.New("gateway.maxRequestBodyBytes: must not be negative"))
	}
	if c.Gateway.MaxSessions < 0 {
		errs = append(errs, errors.New("gateway.maxSessions: must not be negative"))
	}
	for i, o := range c.Gateway.AllowedOrigins {
		if err := ValidateOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("gateway.allowedOrigins[%d]: %w", i, err))
		}
	}
	names := map[string]int{}
	prefixes := map[string]int{}
	aliases := map[string]int{}
	for i := range c.Servers {
		errs = append(errs, c.Servers[i].validate(i, names, prefixes)...)
		errs = append(errs, c.Servers[i].validateAliases(i, aliases)...)
	}
	errs = append(errs, validateNameOverlaps(c.Servers)...)
	vsNames := map[string]int{}
	for i := range c.VirtualServers {
		errs = append(errs, c.VirtualServers[i].validate(i, vsNames)...)
	}
	return errors.Join(errs...)
}

func (s *Server) validate(i int, names, prefixes map[string]int) []error {
	var errs []error
	at := fmt.Sprintf("servers[%d]", i)
	if s.Name == "" {
		errs = append(errs, fmt.Errorf("%s.name: required", at))
	} else if j, dup := names[s.Name]; dup {
		errs = append(errs, fmt.Errorf("%s.name: %q already used by servers[%d]", at, s.Name, j))
	} else {
		names[s.Name] = i
	}
	if err := validateURL(s.URL); err != nil {
		errs = append(errs, fmt.Errorf("%s.url: %w", at, err))
	}
	if !hostnamePattern.MatchString(s.Hostname) {
		errs = append(errs, fmt.Errorf("%s.hostname: %q is not a valid host name", at, s.Hostname))
	}
	if !prefixPattern.MatchString(s.Prefix) {
		errs = append(errs, fmt.Errorf("%s.prefix: %q may only contain letters, digits, '_', '-' and '.'", at, s.Prefix))
	} else if j, dup := prefixes[s.Prefix]; dup {
		errs = append(errs, fmt.Errorf("%s.prefix: %q already used by servers[%d]", at, s.Prefix, j))
	} else {
		prefixes[s.Prefix] = i
	}
	if s.Credential != nil {
		if err := s.Credential.SecretRef.validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s.credential: %w", at, err))
		}
		if strings.ContainsAny(s.Credential.Header, " :\r\n") {
			errs = append(errs, fmt.Errorf("%s.credential.header: %q is not a valid header name", at, s.Credential.Header))
		}
	}
	return errs
}

// validate checks the shape of the reference; resolving it is left to the
// reader, whose environment and mounts may differ from the writer's.
func (r SecretRef) validate() error {
	if (r.Env == "") == (r.File == "") {
		return errors.New("set exactly one of env and file")
	}
	return nil
}

func validateURL(raw string) error {
	if raw == "" {
		return errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, password included
		// ("http://user:secret@host:bad/"); report only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("not a valid URL: %w", err)
	}
	if u.User != nil {
		// Never repeat a password in an error, whatever else is wrong.
		raw = u.Redacted()
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: host required", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q: credentials in the URL are not allowed; use credential", raw)
	}
	return nil
}

// Path returns the URL path of the server's endpoint ("/" if empty), with
// its query if any: the :path the router sets on routed calls.
func (s *Server) Path() string {
	u, err := url.Parse(s.URL)
	if err != nil {
		return "/"
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p
}

// HostPort returns the host:port of the server's URL, with the scheme's
// default port filled in.
func (s *Server) HostPort() string {
	u, err := url.Parse(s.URL)
	if err != nil {
		return ""
	}
	// Rebuild from Hostname and Port rather than appending to u.Host, which
	// may end in an empty port ("http://h:" has Host "h:", not "h:80").
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// ValidateOrigin checks that o is a serialized origin as browsers send it in
// the Origin header: a lowercase http or https scheme, "://", a host and an
// optional port, nothing else (no path, no trailing slash, no userinfo).
func ValidateOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil {
		return fmt.Errorf("%q is not an origin: %w", o, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" ||
		strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return fmt.Errorf("%q is not an origin: want scheme://host[:port] (http or https, no path)", o)
	}
	if o != u.Scheme+"://"+strings.ToLower(u.Host) {
		return fmt.Errorf("%q is not an origin as browsers send it: want %q", o, u.Scheme+"://"+strings.ToLower(u.Host))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: bad port", o)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("%q: empty port", o)
	}
	return nil
}
