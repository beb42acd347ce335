// Package host holds what every Envoy adapter of the router (filter/dynmod,
// filter/golang) needs beyond the router itself, so that the adapters only
// translate their host's API and cannot drift apart:
//
//   - the filter configuration both accept ({"config_path": "..."}) and its
//     validation (ParseFilterConfig);
//   - one router.Router and config.Watch per config file, shared by every
//     Envoy filter config naming it, with a reference count (Acquire);
//   - the counters exported to Envoy and their delta export (Counters);
//   - local-reply details, the internal-error reply, and header parsing;
//   - the slog handler that formats records for Envoy's log (LogHandler).
//
// It is plain Go: no cgo, no Envoy imports.
package host
