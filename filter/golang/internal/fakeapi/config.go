package fakeapi

import (
	"bytes"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"
)

// Config is a golang filter config's api.ConfigCallbackHandler: the metric
// store Parse defines counters in.
type Config struct {
	mu     sync.Mutex
	names  []string
	values []uint64
	gone   bool
}

var _ api.ConfigCallbackHandler = (*Config)(nil)

// NewConfig returns an empty config.
func NewConfig() *Config { return &Config{} }

// DefineCounterMetric defines (or finds: same name, same metric) a counter.
func (c *Config) DefineCounterMetric(name string) api.CounterMetric { return c.define(name) }

// DefineGaugeMetric defines a gauge; it behaves like a counter here.
func (c *Config) DefineGaugeMetric(name string) api.GaugeMetric { return c.define(name) }

func (c *Config) define(name string) *metric {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.names {
		if n == name {
			return &metric{c: c, id: i}
		}
	}
	c.names = append(c.names, name)
	c.values = append(c.values, 0)
	return &metric{c: c, id: len(c.names) - 1}
}

// Counter returns the value of the metric name and whether it is defined.
func (c *Config) Counter(name string) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.names {
		if n == name {
			return c.values[i], true
		}
	}
	return 0, false
}

// Names returns the metrics defined, in order.
func (c *Config) Names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.names...)
}

// Gone makes metric calls fail as after Envoy freed the config
// (envoyGoConfigHandlerWrapper: FilterIsGone).
func (c *Config) Gone() {
	c.mu.Lock()
	c.gone = true
	c.mu.Unlock()
}

type metric struct {
	c  *Config
	id int
}

func (m *metric) locked(f func()) {
	m.c.mu.Lock()
	gone := m.c.gone
	if !gone {
		f()
	}
	m.c.mu.Unlock()
	if gone {
		panic(errRequestFinished)
	}
}

// Increment adds offset; Envoy ignores non-positive counter offsets.
func (m *metric) Increment(offset int64) {
	m.locked(func() {
		if offset > 0 {
			m.c.values[m.id] += uint64(offset)
		}
	})
}

func (m *metric) Get() (v uint64) {
	m.locked(func() { v = m.c.values[m.id] })
	return v
}

func (m *metric) Record(v uint64) { m.locked(func() { m.c.values[m.id] = v }) }

// LogLine is one line the filter logged through the api package.
type LogLine struct {
	Level   api.LogType
	Message string
}

var logs struct {
	sync.Mutex
	lines []LogLine
}

var level atomic.Int32 // api.LogType

type commonCAPI struct{}

func (commonCAPI) Log(l api.LogType, msg string) { record(l, msg) }
func (commonCAPI) LogLevel() api.LogType         { return logLevel() }

func record(l api.LogType, msg string) {
	logs.Lock()
	logs.lines = append(logs.lines, LogLine{l, msg})
	logs.Unlock()
}

func logLevel() api.LogType { return api.LogType(level.Load()) }

// InstallLog makes the api package's logging (api.LogInfo, ...) record
// lines here instead of calling into Envoy, which panics outside Envoy.
func InstallLog() { api.SetCommonCAPI(commonCAPI{}) }

// SetLogLevel sets the level Envoy reports (default Trace: everything).
func SetLogLevel(l api.LogType) { level.Store(int32(l)) }

// Logs returns the lines logged so far that contain substr.
func Logs(substr string) []LogLine {
	logs.Lock()
	defer logs.Unlock()
	var out []LogLine
	for _, l := range logs.lines {
		if strings.Contains(l.Message, substr) {
			out = append(out, l)
		}
	}
	return out
}

// goid returns the current goroutine's id, parsed from its stack header
// ("goroutine 18 [running]:"); the fake uses it as the thread identity
// Envoy's isThreadSafe() checks.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		panic("fakeapi: cannot read the goroutine id")
	}
	return n
}
