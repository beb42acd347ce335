package router

import (
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// setTarget records the server a call goes to and the backend's name for
// the tool or prompt, renaming it in the body when it differs from the
// requested name (a prefix or an alias). A name left as is keeps the body
// as is: no copy, except that a session-era call keeps its body to replay
// it after a lost backend session (replay.go).
func (s *Stream) setTarget(srv *Server, json string, name gjson.Result, bare string) {
	s.server, s.toolName = srv, bare
	if bare != name.Str {
		s.rename(json, name, bare)
	}
	if !s.stateless {
		s.keepForReplay(json)
	}
}

// rename writes the body with params.name's value replaced by to (the
// backend's name for the tool or prompt), touching no other byte, into a
// pooled buffer. When to is written verbatim, toolName points into that
// buffer: to may be a substring of the request body, which goes away.
func (s *Stream) rename(json string, name gjson.Result, to string) {
	bp := bodyPool.Get().(*[]byte)
	b := append((*bp)[:0], json[:name.Index]...)
	start := len(b) + 1 // after the opening quote
	b, verbatim := appendJSONString(b, to)
	b = append(b, json[name.Index+len(name.Raw):]...)
	*bp = b
	s.body = bp
	if verbatim {
		s.toolName = unsafe.String(&b[start], len(to))
	}
	// Otherwise to was escaped, so it is not the request body's bytes (a
	// request-derived to is then gjson's unescaped copy) or it is the
	// config's: either way it outlives the body.
}

// appendJSONString appends v as a JSON string. verbatim reports that v's
// bytes appear unchanged between the quotes, which is the common case.
func appendJSONString(b []byte, v string) (_ []byte, verbatim bool) {
	verbatim = !needsEscape(v)
	b = append(b, '"')
	if verbatim {
		b = append(b, v...)
	} else {
		b = appendJSONStringContent(b, v)
	}
	return append(b, '"'), verbatim
}

// needsEscape reports whether v cannot stand between JSON quotes as is: it
// holds a quote, a backslash, a control character or invalid UTF-8.
func needsEscape(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == '"' || c == '\\' {
			return true
		}
	}
	return !utf8.ValidString(v)
}
