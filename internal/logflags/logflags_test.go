package logflags

import (
	"bytes"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	log, err := New("json", "warn", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, `"msg":"shown"`) {
		t.Errorf("json/warn logger wrote %q", out)
	}
	if _, err := New("text", "debug", &buf); err != nil {
		t.Errorf("text/debug: %v", err)
	}
	_, err = New("xml", "loud", &buf)
	if err == nil || !strings.Contains(err.Error(), "-log-format") || !strings.Contains(err.Error(), "-log-level") {
		t.Errorf("both bad flags must be reported, got %v", err)
	}
}
