package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"time"
)

// The benchmarks' HTTP client is a minimal HTTP/1.1 client on one keep-alive
// connection: it writes prebuilt request bytes and parses only what the
// benchmarks check (status, Content-Length or chunked framing, the session
// header). net/http would add a goroutine hand-off and several allocations
// per request on the same two cores that Envoy and the backend run on; this
// client costs a write, a few reads and no allocation per call.

// requestTimeout bounds one round trip, so that a stuck gateway fails the
// benchmark instead of hanging it.
const requestTimeout = 30 * time.Second

// httpConn is one keep-alive connection. Not safe for concurrent use.
type httpConn struct {
	addr string
	nc   net.Conn
	br   *bufio.Reader
	body []byte // last response body; reused
}

// response is what roundTrip parsed. body is valid until the next call.
type response struct {
	status    int
	sessionID string // Mcp-Session-Id, if any
	body      []byte
}

func newHTTPConn(addr string) *httpConn { return &httpConn{addr: addr} }

func (c *httpConn) Close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

// roundTrip sends req (a complete HTTP/1.1 request) and reads the response.
func (c *httpConn) roundTrip(req []byte) (response, error) {
	if c.nc == nil {
		nc, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return response{}, err
		}
		nc.(*net.TCPConn).SetNoDelay(true)
		c.nc = nc
		if c.br == nil {
			c.br = bufio.NewReaderSize(nc, 16<<10)
		} else {
			c.br.Reset(nc)
		}
	}
	c.nc.SetDeadline(time.Now().Add(requestTimeout))
	if _, err := c.nc.Write(req); err != nil {
		c.Close()
		return response{}, err
	}
	resp, closeAfter, err := c.readResponse()
	if err != nil || closeAfter {
		c.Close()
	}
	return resp, err
}

var (
	hdrContentLength    = []byte("content-length")
	hdrTransferEncoding = []byte("transfer-encoding")
	hdrConnection       = []byte("connection")
	hdrSessionID        = []byte("mcp-session-id")
)

func (c *httpConn) readResponse() (resp response, closeAfter bool, err error) {
	line, err := c.readLine()
	if err != nil {
		return resp, true, fmt.Errorf("status line: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return resp, true, fmt.Errorf("bad status line %q", line)
	}
	if resp.status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return resp, true, fmt.Errorf("bad status line %q", line)
	}
	contentLength, chunked := -1, false
	for {
		line, err := c.readLine()
		if err != nil {
			return resp, true, fmt.Errorf("headers: %w", err)
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return resp, true, fmt.Errorf("bad header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, hdrContentLength):
			if contentLength, err = strconv.Atoi(string(value)); err != nil {
				return resp, true, fmt.Errorf("bad content-length %q", value)
			}
		case bytes.EqualFold(name, hdrTransferEncoding):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, hdrConnection):
			closeAfter = bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, hdrSessionID):
			resp.sessionID = string(value)
		}
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		err = c.readChunked()
	case contentLength >= 0:
		err = c.readN(contentLength)
	case resp.status == 204 || resp.status == 304 || resp.status < 200:
	default: // the body ends with the connection
		closeAfter = true
		var buf bytes.Buffer
		_, err = io.Copy(&buf, c.br)
		c.body = append(c.body, buf.Bytes()...)
	}
	resp.body = c.body
	return resp, closeAfter || err != nil, err
}

// readLine returns one line without its CRLF; it aliases the reader's buffer.
func (c *httpConn) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

func (c *httpConn) readN(n int) error {
	start := len(c.body)
	c.body = slices.Grow(c.body, n)[:start+n] // allocates only while warming up
	_, err := io.ReadFull(c.br, c.body[start:])
	return err
}

func (c *httpConn) readChunked() error {
	for {
		line, err := c.readLine()
		if err != nil {
			return fmt.Errorf("chunk size: %w", err)
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 32)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if size == 0 {
			for { // trailers, then the empty line
				line, err := c.readLine()
				if err != nil {
					return err
				}
				if len(line) == 0 {
					return nil
				}
			}
		}
		if err := c.readN(int(size)); err != nil {
			return err
		}
		if crlf, err := c.readLine(); err != nil || len(crlf) != 0 {
			return errors.New("chunk not followed by CRLF")
		}
	}
}

// requestHeaders are the headers of one MCP POST.
type requestHeaders struct {
	host      string // Host header
	path      string
	sessionID string // Mcp-Session-Id; "" for initialize
	version   string // Mcp-Protocol-Version; "" for initialize
}

// appendRequest appends a complete POST of body to dst.
func appendRequest(dst []byte, h requestHeaders, body []byte) []byte {
	dst = fmt.Appendf(dst, "POST %s HTTP/1.1\r\nHost: %s\r\n", h.path, h.host)
	dst = append(dst, "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"...)
	if h.sessionID != "" {
		dst = fmt.Appendf(dst, "Mcp-Session-Id: %s\r\n", h.sessionID)
	}
	if h.version != "" {
		dst = fmt.Appendf(dst, "Mcp-Protocol-Version: %s\r\n", h.version)
	}
	dst = fmt.Appendf(dst, "Content-Length: %d\r\n\r\n", len(body))
	return append(dst, body...)
}
