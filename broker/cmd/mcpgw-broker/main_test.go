package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestFlagErrorsAreJoined(t *testing.T) {
	var stderr bytes.Buffer
	err := run([]string{"-addr", "", "-log-format", "xml", "-log-level", "loud"}, &stderr)
	if err == nil {
		t.Fatal("bad flags accepted")
	}
	for _, want := range []string{"-config is required", "-addr", "-log-format", "-log-level"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestLoggerFormats(t *testing.T) {
	var out bytes.Buffer
	log, err := parseFlags("c.yaml", "127.0.0.1:0", "json", "debug", &out)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hello")
	if !strings.HasPrefix(out.String(), "{") {
		t.Errorf("json logger wrote %q", out.String())
	}
}
