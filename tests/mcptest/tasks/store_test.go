package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"
)

// waitStatus polls task id until it reaches want or the deadline passes.
func waitStatus(t *testing.T, s *Store, id string, want Status) DetailedTask {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := s.Get(id)
		if err != nil {
			t.Fatalf("Get(%s): %v", id, err)
		}
		if d.Status == want {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: status %s, want %s", id, d.Status, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newTestStore(t *testing.T, ttl time.Duration) *Store {
	t.Helper()
	s := NewStore(ttl, 100*time.Millisecond)
	t.Cleanup(s.Close)
	return s
}

func TestStoreCompletes(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := newTestStore(t, time.Minute)
	created, err := s.Start(func(context.Context, *Input) (*mcp.CallToolResult, error) {
		return textResult("done"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if created.TTLMs != 60000 || created.PollIntervalMs != 100 || created.CreatedAt == "" {
		t.Errorf("envelope = %+v", created)
	}
	d := waitStatus(t, s, created.TaskID, StatusCompleted)
	if d.Result == nil || d.Error != nil || d.InputRequests != nil {
		t.Errorf("completed task = %+v, want a result only", d)
	}
	s.Close()
}

func TestStoreFailures(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := newTestStore(t, time.Minute)
	for name, run := range map[string]RunFunc{
		"error": func(context.Context, *Input) (*mcp.CallToolResult, error) {
			return nil, &jsonrpc.Error{Code: -32000, Message: "boom"}
		},
		"panic": func(context.Context, *Input) (*mcp.CallToolResult, error) { panic("crash") },
	} {
		created, err := s.Start(run)
		if err != nil {
			t.Fatal(err)
		}
		d := waitStatus(t, s, created.TaskID, StatusFailed)
		if d.Error == nil || d.Result != nil {
			t.Errorf("%s: failed task = %+v, want an error only", name, d)
		}
	}
	s.Close()
}

func TestStoreCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := newTestStore(t, time.Minute)
	stopped := make(chan struct{})
	created, _ := s.Start(func(ctx context.Context, _ *Input) (*mcp.CallToolResult, error) {
		<-ctx.Done()
		close(stopped)
		return textResult("too late"), nil // ignored: cancelled is final
	})
	if err := s.Cancel(created.TaskID); err != nil {
		t.Fatal(err)
	}
	<-stopped
	d := waitStatus(t, s, created.TaskID, StatusCancelled)
	if d.Result != nil {
		t.Errorf("cancelled task carries a result: %+v", d)
	}
	if err := s.Cancel(created.TaskID); err != nil {
		t.Errorf("second Cancel = %v, want idempotent nil", err)
	}
	if err := s.Cancel("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Cancel(unknown) = %v, want ErrNotFound", err)
	}
	s.Close()
}

func TestStoreInputPartialFulfillment(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := newTestStore(t, time.Minute)
	created, _ := s.Start(func(ctx context.Context, in *Input) (*mcp.CallToolResult, error) {
		answers, err := in.Ask(ctx, mcp.InputRequestMap{
			"a": elicit("a?", "a", "string"),
			"b": elicit("b?", "b", "string"),
		})
		if err != nil {
			return nil, err
		}
		return textResult("%v %v", accepted(answers, "a")["a"], accepted(answers, "b")["b"]), nil
	})
	id := created.TaskID
	d := waitStatus(t, s, id, StatusInputRequired)
	if len(d.InputRequests) != 2 {
		t.Fatalf("inputRequests = %v, want a and b", d.InputRequests)
	}
	answer := func(k, v string) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"action": "accept", "content": map[string]any{k: v}})
		return b
	}
	// An unknown key is ignored; a known one is consumed.
	if err := s.Update(id, map[string]json.RawMessage{"a": answer("a", "x"), "zzz": json.RawMessage(`{"ignored":true}`)}); err != nil {
		t.Fatal(err)
	}
	d, _ = s.Get(id)
	if _, ok := d.InputRequests["b"]; d.Status != StatusInputRequired || len(d.InputRequests) != 1 || !ok {
		t.Fatalf("after partial update: %s %v, want input_required with b only", d.Status, d.InputRequests)
	}
	// A malformed answer to a pending request is rejected, nothing applied.
	if err := s.Update(id, map[string]json.RawMessage{"b": json.RawMessage(`{"what":1}`)}); err == nil {
		t.Error("malformed answer accepted")
	}
	if err := s.Update(id, map[string]json.RawMessage{"b": answer("b", "y")}); err != nil {
		t.Fatal(err)
	}
	d = waitStatus(t, s, id, StatusCompleted)
	if got := d.Result.Content[0].(*mcp.TextContent).Text; got != "x y" {
		t.Errorf("result = %q, want %q", got, "x y")
	}
	if err := s.Update("nope", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update(unknown) = %v, want ErrNotFound", err)
	}
	s.Close()
}

func TestStoreTTLExpiry(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := newTestStore(t, 50*time.Millisecond)
	stopped := make(chan struct{})
	created, _ := s.Start(func(ctx context.Context, _ *Input) (*mcp.CallToolResult, error) {
		<-ctx.Done() // expiry cancels a task still running
		close(stopped)
		return nil, ctx.Err()
	})
	if _, err := s.Get(created.TaskID); err != nil {
		t.Fatalf("Get before TTL: %v", err)
	}
	<-stopped
	deadline := time.Now().Add(5 * time.Second)
	for s.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := s.Get(created.TaskID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after TTL = %v, want ErrNotFound", err)
	}
	s.Close()
}

func TestStoreCloseStopsTasks(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := NewStore(time.Minute, time.Second)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = s.Start(func(ctx context.Context, in *Input) (*mcp.CallToolResult, error) {
				_, err := in.Ask(ctx, mcp.InputRequestMap{"k": elicit("?", "k", "string")})
				return nil, err
			})
		}()
	}
	wg.Wait()
	s.Close() // must not hang: every task's context is cancelled
	if s.Len() != 0 {
		t.Errorf("Len after Close = %d", s.Len())
	}
	if _, err := s.Start(func(context.Context, *Input) (*mcp.CallToolResult, error) { return nil, nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
}
