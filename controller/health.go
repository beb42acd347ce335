package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/event"
)

// BrokerServer is one entry of the broker's GET /status. The controller
// reads it over HTTP rather than importing the broker: the JSON is the
// contract, and the controller must not link the broker's dependencies.
type BrokerServer struct {
	Name              string    `json:"name"`
	URL               string    `json:"url"`
	Prefix            string    `json:"prefix"`
	State             string    `json:"state"` // connecting, ready, invalid or unreachable
	ProtocolVersion   string    `json:"protocolVersion"`
	Tools             int       `json:"tools"`
	Prompts           int       `json:"prompts"`
	Resources         int       `json:"resources"`
	ResourceTemplates int       `json:"resourceTemplates"`
	LastError         string    `json:"lastError"`
	Since             time.Time `json:"since"`
}

// BrokerHealth is the last reading of the broker's status.
type BrokerHealth struct {
	// Polled is false until the first reading, successful or not.
	Polled bool
	// Err is why the last reading failed; Servers is then empty.
	Err error
	// Servers by name.
	Servers map[string]BrokerServer
}

// HealthPoller reads the broker's status periodically and triggers a
// reconcile whenever it changes, so Ready conditions follow the backends
// without the reconciler polling per object. It is a manager.Runnable.
type HealthPoller struct {
	// URL of the broker's GET /status.
	URL      string
	Interval time.Duration
	Client   *http.Client
	Logger   *slog.Logger

	events chan event.GenericEvent
	mu     sync.Mutex
	last   BrokerHealth
}

// NewHealthPoller returns a poller; Events must be watched by the
// reconciler.
func NewHealthPoller(url string, interval time.Duration, logger *slog.Logger) *HealthPoller {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &HealthPoller{
		URL: url, Interval: interval, Logger: logger,
		Client: &http.Client{Timeout: 5 * time.Second},
		events: make(chan event.GenericEvent, 1),
	}
}

// Events delivers one event per change of the broker's status.
func (p *HealthPoller) Events() <-chan event.GenericEvent { return p.events }

// Health returns the last reading.
func (p *HealthPoller) Health() BrokerHealth {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// Start polls until ctx ends.
func (p *HealthPoller) Start(ctx context.Context) error {
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		p.poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (p *HealthPoller) poll(ctx context.Context) {
	servers, err := p.fetch(ctx)
	h := BrokerHealth{Polled: true, Err: err, Servers: servers}
	p.mu.Lock()
	changed := !sameHealth(p.last, h)
	p.last = h
	p.mu.Unlock()
	if !changed {
		return
	}
	if err != nil {
		p.Logger.Warn("broker status unavailable", "url", p.URL, "err", err)
	}
	// A pending event already covers this change: the reconcile reads the
	// latest health, not the one at send time.
	select {
	case p.events <- event.GenericEvent{}:
	default:
	}
}

func (p *HealthPoller) fetch(ctx context.Context) (map[string]BrokerServer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", p.URL, resp.StatusCode)
	}
	var body struct {
		Servers []BrokerServer `json:"servers"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET %s: %w", p.URL, err)
	}
	m := make(map[string]BrokerServer, len(body.Servers))
	for _, s := range body.Servers {
		m[s.Name] = s
	}
	return m, nil
}

// sameHealth compares what the statuses are made of; the broker's Since
// timestamps alone do not warrant a reconcile.
func sameHealth(a, b BrokerHealth) bool {
	if a.Polled != b.Polled || errString(a.Err) != errString(b.Err) || len(a.Servers) != len(b.Servers) {
		return false
	}
	for name, s := range a.Servers {
		t, ok := b.Servers[name]
		s.Since, t.Since = time.Time{}, time.Time{}
		if !ok || !reflect.DeepEqual(s, t) {
			return false
		}
	}
	return true
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
