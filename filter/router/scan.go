package router

import (
	"encoding/binary"
	"math/bits"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// scanMessage validates a request body and finds the members the router
// reads, in one pass. It replaces gjson.ValidBytes followed by one gjson.Get
// per member, for three reasons:
//
//   - Duplicate members. gjson returns the first occurrence of a key, while
//     backends and the broker (Go, Python and JavaScript decoders alike)
//     keep the last. With {"name":"a_x","name":"secret"} the router would
//     route and set x-mcp-toolname for "x" while the backend ran "secret",
//     defeating any policy keyed on the routing headers. A message in which
//     a member the router reads occurs twice is therefore ambiguous and
//     refused. So is one that spells such a member in another case
//     ("Method", "NAME"): case-insensitive decoders (encoding/json v1, as
//     in mcp-go) read it as the member, case-sensitive ones (go-sdk, the
//     router) do not. Every member the router routes, rewrites or acts on
//     is one of memberNames, read from here and nowhere else.
//   - Nesting depth. gjson's validator recurses without limit: a 1 MiB body
//     of '[' cost 155 ms and 64 MB of goroutine stack on an Envoy worker.
//     Deeper than maxDepth is refused as a parse error.
//   - Speed. Validation dominated the routed call (about 60% of it); string
//     contents are skipped here eight bytes at a time.
//
// It accepts exactly the documents gjson.Valid accepts (nesting aside), so
// that the gjson calls made on its results see valid JSON; the differential
// fuzz test FuzzScanMessage checks this.
func scanMessage(body []byte) (m message, ok bool) {
	sc := scanner{data: body}
	i := skipSpace(body, 0)
	if i == len(body) {
		return m, false
	}
	m.kind = body[i]
	end, ok := sc.value(i, 0, roleTop)
	if !ok || skipSpace(body, end) != len(body) {
		return m, false
	}
	m.json, m.seen = unsafeBodyString(body), sc.seen
	m.ambiguous = sc.ambiguous
	m.jsonrpc = m.get(memberJSONRPC)
	m.id = m.get(memberID)
	m.method = m.get(memberMethod)
	m.name = m.get(memberName)
	return m, true
}

// maxDepth bounds the nesting of arrays and objects. MCP messages nest a
// handful of levels; go-sdk's decoder allows 1000.
const maxDepth = 1000

// message holds what scanMessage found. Absent members do not Exist(); a
// Result's Index is its offset in the body. The members read on every
// request are parsed up front, the others by get.
type message struct {
	kind                      byte // first byte of the top-level value
	jsonrpc, id, method, name gjson.Result
	ambiguous                 bool // a member below occurs twice
	json                      string
	seen                      [numMembers]span
}

// get returns a recorded member (see memberNames).
func (m *message) get(member int) gjson.Result {
	sp := m.seen[member]
	if sp.end == 0 {
		return gjson.Result{}
	}
	r := gjson.Parse(m.json[sp.start:sp.end])
	r.Index = sp.start
	return r
}

// The members recorded, by the object they belong to (roleMembers).
const (
	// The top-level object.
	memberJSONRPC = iota
	memberID
	memberMethod
	memberParams
	memberResult // of a response (a client's answer, a backend's result)
	// params: what calls are routed on (name: tools/call, prompts/get;
	// taskId: tasks/*; requestId: notifications/cancelled), and what the
	// router passes on to backends for the client (level:
	// logging/setLevel; protocolVersion, capabilities: initialize).
	memberName
	memberTaskID
	memberRequestID
	memberLevel
	memberProtocolVersion
	memberCapabilities
	memberMeta
	// params._meta: the stateless era's protocol version.
	memberMetaVersion
	// result: the task id of a task-creating answer (tasks.go).
	memberResultTaskID
	numMembers
)

var memberNames = [numMembers]string{
	"jsonrpc", "id", "method", "params", "result",
	"name", "taskId", "requestId", "level", "protocolVersion", "capabilities", "_meta",
	metaVersionKey,
	"taskId",
}

// metaVersionKey is the _meta member of a stateless-era request that
// carries its protocol version.
const metaVersionKey = "io.modelcontextprotocol/protocolVersion"

// roles tell which object's members are recorded.
const (
	roleNone = iota
	roleTop
	roleParams
	roleMeta
	roleResult
)

// roleMembers[role] is the range of members an object of that role has.
var roleMembers = [...][2]int{
	roleTop:    {memberJSONRPC, memberResult},
	roleParams: {memberName, memberMeta},
	roleMeta:   {memberMetaVersion, memberMetaVersion},
	roleResult: {memberResultTaskID, memberResultTaskID},
}

// childRole is the role of a recorded member's value (roleNone: its
// members are not recorded).
var childRole = [numMembers]int{memberParams: roleParams, memberResult: roleResult, memberMeta: roleMeta}

type span struct{ start, end int } // end == 0: not seen

type scanner struct {
	data      []byte
	seen      [numMembers]span // the exactly named occurrence
	count     [numMembers]uint8
	ambiguous bool
}

// isSpace is JSON's whitespace; most bytes fail the first comparison.
func isSpace(c byte) bool { return c <= ' ' && (c == ' ' || c == '\t' || c == '\n' || c == '\r') }

func skipSpace(d []byte, i int) int {
	for i < len(d) && isSpace(d[i]) {
		i++
	}
	return i
}

// value validates the value starting at d[i] (not whitespace).
func (sc *scanner) value(i, depth, role int) (int, bool) {
	d := sc.data
	if i >= len(d) {
		return i, false
	}
	switch c := d[i]; {
	case c == '{':
		if depth >= maxDepth {
			return i, false
		}
		return sc.object(i+1, depth+1, role)
	case c == '[':
		if depth >= maxDepth {
			return i, false
		}
		return sc.array(i+1, depth+1)
	case c == '"':
		return sc.str(i + 1)
	case c == '-' || (c >= '0' && c <= '9'):
		return validNumber(d, i)
	case c == 't':
		return literal(d, i, "true")
	case c == 'f':
		return literal(d, i, "false")
	case c == 'n':
		return literal(d, i, "null")
	}
	return i, false
}

func (sc *scanner) object(i, depth, role int) (int, bool) {
	d := sc.data
	i = skipSpace(d, i)
	if i < len(d) && d[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(d) || d[i] != '"' {
			return i, false
		}
		keyStart := i
		var ok bool
		if i, ok = sc.str(i + 1); !ok {
			return i, false
		}
		member, exact := -1, false
		if role != roleNone {
			member, exact = sc.member(sc.key(keyStart, i), role)
		}
		i = skipSpace(d, i)
		if i >= len(d) || d[i] != ':' {
			return i, false
		}
		i = skipSpace(d, i+1)
		child := roleNone
		if exact {
			child = childRole[member] // a case variant is not read, only counted
		}
		valueStart := i
		if i, ok = sc.value(i, depth, child); !ok {
			return i, false
		}
		if exact && sc.seen[member].end == 0 {
			sc.seen[member] = span{valueStart, i}
		}
		i = skipSpace(d, i)
		if i >= len(d) {
			return i, false
		}
		switch d[i] {
		case '}':
			return i + 1, true
		case ',':
			i = skipSpace(d, i+1)
		default:
			return i, false
		}
	}
}

// member classifies a decoded key of an object whose members are recorded:
// it returns the member whose name the key equals ignoring case (or -1),
// and whether it equals it exactly. A second occurrence, or any other
// spelling, makes the message ambiguous.
func (sc *scanner) member(key string, role int) (member int, exact bool) {
	if key == "" {
		return -1, false
	}
	// Most keys differ from every member in their first byte: only a
	// member whose first letter is the key's, ignoring ASCII case, can
	// match. (A key's multi-byte first letter can only fold to ASCII s or
	// k, which no member name starts with: TestMemberNames.)
	first := key[0]
	if 'A' <= first && first <= 'Z' {
		first += 'a' - 'A'
	}
	r := roleMembers[role]
	for m := r[0]; m <= r[1]; m++ {
		if memberNames[m][0] == first && strings.EqualFold(key, memberNames[m]) {
			sc.count[m]++
			exact := key == memberNames[m]
			if sc.count[m] > 1 || !exact {
				sc.ambiguous = true
			}
			return m, exact
		}
	}
	return -1, false
}

// key returns the decoded key d[start:end] (quotes included).
func (sc *scanner) key(start, end int) string {
	raw := unsafeBodyString(sc.data[start+1 : end-1])
	if strings.IndexByte(raw, '\\') < 0 {
		return raw
	}
	return gjson.Parse(unsafeBodyString(sc.data[start:end])).Str
}

// unsafeBodyString views body as a string without copying (for gjson and
// key comparisons; nothing keeps it beyond the call).
func unsafeBodyString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (sc *scanner) array(i, depth int) (int, bool) {
	d := sc.data
	i = skipSpace(d, i)
	if i < len(d) && d[i] == ']' {
		return i + 1, true
	}
	for {
		var ok bool
		if i, ok = sc.value(i, depth, roleNone); !ok {
			return i, false
		}
		i = skipSpace(d, i)
		if i >= len(d) {
			return i, false
		}
		switch d[i] {
		case ']':
			return i + 1, true
		case ',':
			i = skipSpace(d, i+1)
		default:
			return i, false
		}
	}
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// special8 returns a mask whose lowest set bit is the high bit of the first
// byte of x (little-endian) that is '"', '\\' or a control character
// (< 0x20); zero if there is none. (The classic "has zero byte" trick: its
// lowest flagged byte is exact; only bytes above it may be flagged falsely.)
func special8(x uint64) uint64 {
	q := x ^ (ones * '"')
	b := x ^ (ones * '\\')
	return ((q-ones)&^q | (b-ones)&^b | (x-ones*0x20)&^x) & highs
}

// str validates a string whose opening quote precedes d[i], as gjson does
// (escapes checked, UTF-8 not), and returns the index after its closing
// quote. Plain bytes are skipped eight at a time.
func (sc *scanner) str(i int) (int, bool) {
	d := sc.data
	for {
		for i+8 <= len(d) {
			if m := special8(binary.LittleEndian.Uint64(d[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		// d[i] is special, or fewer than 8 bytes are left.
		if i >= len(d) {
			return i, false
		}
		switch c := d[i]; {
		case c == '"':
			return i + 1, true
		case c < ' ':
			return i, false
		case c == '\\':
			i++
			if i >= len(d) {
				return i, false
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				for range 4 {
					i++
					if i >= len(d) || !isHex(d[i]) {
						return i, false
					}
				}
			default:
				return i, false
			}
		}
		i++
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// validNumber validates the number starting at d[i], with gjson's grammar
// (JSON's: no leading zeros, no '+', digits after '.' and 'e').
func validNumber(d []byte, i int) (int, bool) {
	if d[i] == '-' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return i, false
		}
	}
	if d[i] == '0' {
		i++
	} else {
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return i, false
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return i, false
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	return i, true
}

func literal(d []byte, i int, lit string) (int, bool) {
	if len(d)-i >= len(lit) && string(d[i:i+len(lit)]) == lit {
		return i + len(lit), true
	}
	return i, false
}
