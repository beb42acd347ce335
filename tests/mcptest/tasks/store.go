package tasks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Status is a task's status, as SEP-2663 names it on the wire.
type Status string

// The task statuses. Completed, Failed and Cancelled are terminal: a task
// never leaves them.
const (
	StatusWorking       Status = "working"
	StatusInputRequired Status = "input_required"
	StatusCompleted     Status = "completed"
	StatusFailed        Status = "failed"
	StatusCancelled     Status = "cancelled"
)

// Terminal reports whether s is a final status.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// Errors of the Store.
var (
	// ErrNotFound: no task has that id (never created, or expired).
	ErrNotFound = errors.New("tasks: unknown task")
	// ErrClosed: the store is closed and creates no task.
	ErrClosed = errors.New("tasks: store closed")
)

// RunFunc is the body of a task: it returns the tool result, or an error for
// a protocol-level failure (the task then fails; a *jsonrpc.Error is reported
// as is, anything else as an internal error). A tool that ran but failed
// returns a result with IsError set instead: the task completes. The context
// is cancelled when the task is cancelled, expires or the store closes; in
// must only be used from the goroutine running the function.
type RunFunc func(ctx context.Context, in *Input) (*mcp.CallToolResult, error)

// Task is the task envelope common to CreateTaskResult and tasks/get: the
// SEP-2663 wire fields (ttlMs and pollIntervalMs are integer milliseconds).
type Task struct {
	TaskID         string `json:"taskId"`
	Status         Status `json:"status"`
	StatusMessage  string `json:"statusMessage,omitempty"`
	CreatedAt      string `json:"createdAt"`
	LastUpdatedAt  string `json:"lastUpdatedAt"`
	TTLMs          int64  `json:"ttlMs"`
	PollIntervalMs int64  `json:"pollIntervalMs,omitempty"`
}

// DetailedTask is what tasks/get returns: the envelope plus, depending on the
// status, the pending input requests, the inlined tool result or the
// protocol error.
type DetailedTask struct {
	Task
	InputRequests mcp.InputRequestMap `json:"inputRequests,omitempty"`
	Result        *mcp.CallToolResult `json:"result,omitempty"`
	Error         *jsonrpc.Error      `json:"error,omitempty"`
}

// Store holds tasks in memory and runs each on its own goroutine. A task is
// kept for its TTL, counted from creation, whatever its status: when the TTL
// elapses it is cancelled (if still running) and forgotten. All methods are
// safe for concurrent use.
type Store struct {
	ttl, poll time.Duration
	now       func() time.Time

	mu     sync.Mutex
	tasks  map[string]*task
	closed bool
	wg     sync.WaitGroup // running task goroutines
}

// task is the mutable state of one task, guarded by Store.mu.
type task struct {
	id               string
	status           Status
	message          string
	created, updated time.Time
	result           *mcp.CallToolResult
	err              *jsonrpc.Error
	cancel           context.CancelFunc
	expiry           *time.Timer

	// The current input round: what the task waits for, the answers so far,
	// and a channel closed when pending becomes empty.
	pending  mcp.InputRequestMap
	answers  mcp.InputResponseMap
	answered chan struct{}
}

// NewStore returns a store keeping tasks for ttl and advising clients to poll
// every poll.
func NewStore(ttl, poll time.Duration) *Store {
	return &Store{ttl: ttl, poll: poll, now: time.Now, tasks: map[string]*task{}}
}

// Start creates a task and runs it on a new goroutine. The task is stored
// before Start returns, so a tasks/get for the returned id resolves at once
// (SEP-2663's durable creation).
func (s *Store) Start(run RunFunc) (Task, error) {
	id, err := newID()
	if err != nil {
		return Task{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	now := s.now()
	t := &task{id: id, status: StatusWorking, created: now, updated: now, cancel: cancel}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		cancel()
		return Task{}, ErrClosed
	}
	s.tasks[id] = t
	t.expiry = time.AfterFunc(s.ttl, func() { s.expire(id) })
	s.wg.Add(1)
	go s.run(ctx, t, run)
	return s.envelope(t), nil
}

// run runs one task body and records its outcome.
func (s *Store) run(ctx context.Context, t *task, run RunFunc) {
	defer s.wg.Done()
	defer t.cancel()
	res, err := callRecovered(ctx, &Input{s: s, t: t}, run)
	s.finish(t, res, err)
}

// callRecovered calls run, turning a panic into an internal error: a
// crashing tool is a protocol-level failure of its task, not of the server.
func callRecovered(ctx context.Context, in *Input, run RunFunc) (res *mcp.CallToolResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("tool panicked: %v", p)}
		}
	}()
	return run(ctx, in)
}

// finish records the outcome of a task body, unless the task already
// settled (it was cancelled while running: cancelled is final).
func (s *Store) finish(t *task, res *mcp.CallToolResult, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.status.Terminal() {
		return
	}
	switch {
	case err != nil:
		t.status, t.err = StatusFailed, asRPCError(err)
	case res == nil:
		t.status, t.err = StatusFailed, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "tool returned no result"}
	default:
		t.status, t.result = StatusCompleted, res
	}
	t.pending, t.answers = nil, nil
	t.updated = s.now()
}

// asRPCError is err as the JSON-RPC error a failed task reports.
func asRPCError(err error) *jsonrpc.Error {
	var rpcErr *jsonrpc.Error
	if errors.As(err, &rpcErr) {
		return rpcErr
	}
	return &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error()}
}

// Get returns the current state of task id.
func (s *Store) Get(id string) (DetailedTask, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return DetailedTask{}, ErrNotFound
	}
	d := DetailedTask{Task: s.envelope(t), Result: t.result, Error: t.err}
	if t.status == StatusInputRequired && len(t.pending) > 0 {
		d.InputRequests = make(mcp.InputRequestMap, len(t.pending))
		for k, v := range t.pending {
			d.InputRequests[k] = v
		}
	}
	return d, nil
}

// Cancel cancels task id: an active task settles to cancelled at once and its
// body's context is cancelled; a terminal task is left as it is (cancel is
// idempotent).
func (s *Store) Cancel(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return ErrNotFound
	}
	if t.status.Terminal() {
		return nil
	}
	t.status, t.message = StatusCancelled, "cancelled by the client"
	t.pending, t.answers = nil, nil
	t.updated = s.now()
	t.cancel()
	return nil
}

// Update delivers input responses to task id. Responses whose key is not a
// pending input request are ignored (they may answer an earlier round); the
// answered keys leave the pending set, and the task resumes once no request
// is pending. A malformed response to a pending request is an error and
// nothing is applied.
func (s *Store) Update(id string, responses map[string]json.RawMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return ErrNotFound
	}
	if t.status != StatusInputRequired {
		return nil
	}
	decoded := mcp.InputResponseMap{}
	for k, raw := range responses {
		if _, pending := t.pending[k]; !pending {
			continue
		}
		r, err := decodeInputResponse(raw)
		if err != nil {
			return fmt.Errorf("inputResponses[%q]: %w", k, err)
		}
		decoded[k] = r
	}
	if len(decoded) == 0 {
		return nil
	}
	for k, r := range decoded {
		delete(t.pending, k)
		t.answers[k] = r
	}
	t.updated = s.now()
	if len(t.pending) == 0 {
		t.status = StatusWorking
		close(t.answered)
	}
	return nil
}

// decodeInputResponse decodes one input response with the SDK's rules (the
// kind is told by its keys: action, role or roots).
func decodeInputResponse(raw json.RawMessage) (mcp.InputResponse, error) {
	var m mcp.InputResponseMap
	if err := json.Unmarshal([]byte(`{"r":`+string(raw)+`}`), &m); err != nil {
		return nil, err
	}
	return m["r"], nil
}

// expire forgets task id once its TTL has elapsed, cancelling it if running.
func (s *Store) expire(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tasks[id]; ok {
		t.cancel()
		delete(s.tasks, id)
	}
}

// Len is the number of stored tasks.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tasks)
}

// Close cancels every task, forgets them, and waits for their goroutines.
// Start fails after Close. Close is idempotent.
func (s *Store) Close() {
	s.mu.Lock()
	s.closed = true
	for id, t := range s.tasks {
		t.expiry.Stop()
		t.cancel()
		delete(s.tasks, id)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// envelope is the wire envelope of t; s.mu must be held.
func (s *Store) envelope(t *task) Task {
	return Task{
		TaskID:         t.id,
		Status:         t.status,
		StatusMessage:  t.message,
		CreatedAt:      timestamp(t.created),
		LastUpdatedAt:  timestamp(t.updated),
		TTLMs:          s.ttl.Milliseconds(),
		PollIntervalMs: s.poll.Milliseconds(),
	}
}

// timestamp formats t as the ISO-8601 UTC timestamp the wire carries.
func timestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// newID mints an opaque, unguessable task id: task ids are the only
// credential a client needs to read or cancel a task.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("tasks: mint id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Input lets a running task ask its client for input: the task parks in
// input_required with the requests on tasks/get until tasks/update has
// answered them all.
type Input struct {
	s *Store
	t *task
}

// Ask publishes requests (keyed by ids the client echoes back) and waits
// until every one is answered, returning the answers; or returns ctx's error
// when the task is cancelled first. A nil Input (the synchronous path of a
// tool) cannot ask and returns an error.
func (in *Input) Ask(ctx context.Context, requests mcp.InputRequestMap) (mcp.InputResponseMap, error) {
	if in == nil {
		return nil, errNoInput
	}
	if len(requests) == 0 {
		return mcp.InputResponseMap{}, nil
	}
	s, t := in.s, in.t
	s.mu.Lock()
	if t.status.Terminal() {
		s.mu.Unlock()
		return nil, context.Canceled
	}
	answered := make(chan struct{})
	t.pending = make(mcp.InputRequestMap, len(requests))
	for k, v := range requests {
		t.pending[k] = v
	}
	t.answers, t.answered = mcp.InputResponseMap{}, answered
	t.status, t.updated = StatusInputRequired, s.now()
	s.mu.Unlock()

	select {
	case <-answered:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	answers := t.answers
	t.answers = nil
	return answers, nil
}
