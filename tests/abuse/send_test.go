package abuse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// Checks beyond status and code.

func all(checks ...func(*fixture, answer) error) func(*fixture, answer) error {
	return func(f *fixture, a answer) error {
		var errs []error
		for _, c := range checks {
			errs = append(errs, c(f, a))
		}
		return errors.Join(errs...)
	}
}

// noCanary: nothing connected to the canary, the address spoofed routing
// headers name.
func noCanary(f *fixture, _ answer) error {
	if n := f.canary.conns.Load(); n != 0 {
		return fmt.Errorf("%d connections reached the spoofed upstream address", n)
	}
	return nil
}

// contains: the answer's body holds each of subs.
func contains(subs ...string) func(*fixture, answer) error {
	return func(_ *fixture, a answer) error {
		for _, s := range subs {
			if !bytes.Contains(a.body, []byte(s)) {
				return fmt.Errorf("answer lacks %q: %.300q", s, a.body)
			}
		}
		return nil
	}
}

// Senders of the slow and broken bodies.

// sendChunked posts a valid-looking body of n bytes with no
// Content-Length (chunked), so that only the router's count can stop it.
func sendChunked(n int) func(*testing.T, *fixture, *hostile) answer {
	return func(t *testing.T, f *fixture, c *hostile) answer {
		t.Helper()
		prefix := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo_echo","arguments":{"text":"`
		body := io.MultiReader(strings.NewReader(prefix), strings.NewReader(longString('x', n)), strings.NewReader(`"}}}`))
		req := f.request(t, c)
		req.Body, req.ContentLength = io.NopCloser(body), -1 // unknown length: chunked
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		defer resp.Body.Close()
		return readAnswer(t, resp)
	}
}

// rawGoodCall is the good call as raw bytes on the kept session.
func (f *fixture) rawGoodCall() string { return f.fill(rawPOST(goodCall)) }

// sendSlow trickles the good call in 20 writes, 20ms apart.
func sendSlow(t *testing.T, f *fixture, _ *hostile) answer {
	t.Helper()
	conn := f.dial(t)
	defer conn.Close()
	raw := f.rawGoodCall()
	step := len(raw)/20 + 1
	for i := 0; i < len(raw); i += step {
		if _, err := io.WriteString(conn, raw[i:min(i+step, len(raw))]); err != nil {
			t.Fatalf("write: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // pacing the writes, not waiting for an outcome
	}
	return f.readRaw(t, conn)
}

// sendHalfThenGood sends the headers and half the body of a call, makes
// the kept session's good call meanwhile (it must complete while the
// other request is provably incomplete), then sends the rest.
func sendHalfThenGood(t *testing.T, f *fixture, _ *hostile) answer {
	t.Helper()
	conn := f.dial(t)
	defer conn.Close()
	raw := f.rawGoodCall()
	half := len(raw) - len(goodCall)/2
	if _, err := io.WriteString(conn, raw[:half]); err != nil {
		t.Fatalf("write: %v", err)
	}
	f.good(t)
	if _, err := io.WriteString(conn, raw[half:]); err != nil {
		t.Fatalf("write: %v", err)
	}
	return f.readRaw(t, conn)
}

// sendHalfThenClose sends half a call and hangs up; no answer is awaited.
func sendHalfThenClose(t *testing.T, f *fixture, _ *hostile) answer {
	t.Helper()
	conn := f.dial(t)
	raw := f.rawGoodCall()
	if _, err := io.WriteString(conn, raw[:len(raw)-len(goodCall)/2]); err != nil {
		t.Fatalf("write: %v", err)
	}
	conn.Close()
	return answer{}
}
