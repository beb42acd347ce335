package router

import (
	"bytes"
	"encoding/json"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// stripPrefix writes the body with params.name replaced by bare, touching
// no other byte, into a pooled buffer; toolName then points into it.
func (s *Stream) stripPrefix(json string, name gjson.Result, bare string) {
	bp := bodyPool.Get().(*[]byte)
	b := append((*bp)[:0], json[:name.Index]...)
	if strings.IndexByte(name.Raw, '\\') < 0 {
		// The raw string has no escapes, so the prefix is its first bytes.
		b = append(b, '"')
		b = append(b, name.Raw[1+len(name.Str)-len(bare):]...)
	} else {
		enc, _ := jsonMarshalString(bare)
		b = append(b, enc...)
	}
	nameStart := name.Index + 1
	b = append(b, json[name.Index+len(name.Raw):]...)
	*bp = b
	s.body = bp
	if strings.IndexByte(name.Raw, '\\') < 0 {
		s.toolName = unsafe.String(&b[nameStart], len(bare))
	}
}

func jsonMarshalString(v string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
