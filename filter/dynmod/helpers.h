// C helpers that batch several Envoy callbacks into one cgo transition: each
// Go->C call costs far more than a C->C call, and a routed request would
// otherwise make a dozen of them. They run on the hook's worker thread like
// any callback. Pointers the Go side passes in point to heap memory that
// holds no Go pointers (per-stream scratch arrays, byte buffers), as the cgo
// pointer rules require; the helpers never keep them after returning.

#ifndef MCPGW_HELPERS_H
#define MCPGW_HELPERS_H

#include "abi.h"

// Key table, filled once by Go at init with C copies of the header names,
// so the helpers need no Go strings. Indexes are the Go constants key*.
#define MCPGW_MAX_KEYS 16
void mcpgw_set_key(int i, const char* p, size_t n);

// One header write of a batch: offsets into the batch's byte buffer. A zero
// val_len removes the header (set_header semantics).
typedef struct {
  uint32_t key_off, key_len, val_off, val_len;
} mcpgw_header_op;

// Removes keys[strip_first, strip_first+strip_n) from the request headers,
// clears the route cache if any was present, then reads
// keys[read_first, read_first+read_n) into out (ptr NULL when absent).
// Returns how many headers were removed.
int mcpgw_request_headers(uintptr_t f, int strip_first, int strip_n, int read_first, int read_n,
                          envoy_dynamic_module_type_envoy_buffer* out);

// Fills out[0, cap) with the request body chunks, buffered ones first, and
// returns how many chunks the body has (more than cap: call again bigger).
size_t mcpgw_request_body(uintptr_t f, envoy_dynamic_module_type_envoy_buffer* out, size_t cap);

// Returns the length of the request body received so far (buffered chunks
// and the current one).
size_t mcpgw_request_body_size(uintptr_t f);

// Applies n header writes to the header map of the given type, then, if body
// is not NULL, replaces the whole request body with it, then clears the
// route cache if clear_route is set.
void mcpgw_apply(uintptr_t f, int32_t header_type, const char* buf, const mcpgw_header_op* ops,
                 size_t n, const char* body, size_t body_len, bool clear_route);

// Reads the response :status (0 when absent or malformed), whether the
// response code details say "via_upstream" (the backend produced it) and,
// into header, the response header keys[header_key] (ptr NULL when absent).
uint32_t mcpgw_response_status(uintptr_t f, bool* via_upstream, int header_key,
                               envoy_dynamic_module_type_envoy_buffer* header);

// Fills out[0, cap) with the chunks of the response body data the current
// response body hook received, and returns how many it has (more than cap:
// call again bigger).
size_t mcpgw_response_body(uintptr_t f, envoy_dynamic_module_type_envoy_buffer* out, size_t cap);

// Replaces the response body data of the current response body hook with
// body (which may be empty).
void mcpgw_replace_response_chunk(uintptr_t f, const char* body, size_t body_len);

// Sends a local reply with the n headers of a batch (at most
// MCPGW_MAX_REPLY_HEADERS; a zero val_len sends an empty value).
#define MCPGW_MAX_REPLY_HEADERS 8
void mcpgw_send_response(uintptr_t f, uint32_t status, const char* buf, const mcpgw_header_op* ops,
                         size_t n, const char* body, size_t body_len, const char* details,
                         size_t details_len);

// Sends a local reply with content-type: application/json.
void mcpgw_send_json(uintptr_t f, uint32_t status, const char* body, size_t body_len,
                     const char* details, size_t details_len);

// Defines a label-less counter; returns envoy_dynamic_module_type_metrics_result.
int32_t mcpgw_define_counter(uintptr_t config, const char* name, size_t name_len, size_t* id);

// Increments counter ids[i] by deltas[i] for i < n.
void mcpgw_increment_counters(uintptr_t f, const size_t* ids, const uint64_t* deltas, size_t n);

// Logs one line through Envoy's dynamic_modules logger.
void mcpgw_log(int32_t level, const char* msg, size_t len);

// Reports whether the process defines symbol (dlsym in the global scope):
// which of the callbacks that only some Envoy versions have this Envoy has.
bool mcpgw_host_has(const char* symbol);

#endif // MCPGW_HELPERS_H
