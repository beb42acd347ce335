// See helpers.h. Plain C over the Envoy callbacks declared in abi.h.

#define _GNU_SOURCE // RTLD_DEFAULT, on glibc < 2.36 (Ubuntu 22.04 builds the images)
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#include "helpers.h"

static envoy_dynamic_module_type_module_buffer keys[MCPGW_MAX_KEYS];

void mcpgw_set_key(int i, const char* p, size_t n) {
  if (i >= 0 && i < MCPGW_MAX_KEYS) {
    keys[i].ptr = p;
    keys[i].length = n;
  }
}

int mcpgw_request_headers(uintptr_t f, int strip_first, int strip_n, int read_first, int read_n,
                          envoy_dynamic_module_type_envoy_buffer* out) {
  int removed = 0;
  for (int i = strip_first; i < strip_first + strip_n; i++) {
    envoy_dynamic_module_type_envoy_buffer v = {NULL, 0};
    size_t count = 0;
    envoy_dynamic_module_callback_http_get_header(f, MCPGW_REQUEST_HEADER, keys[i], &v, 0, &count);
    if (count > 0) {
      // An empty value removes every value of the header (setHeaderValueImpl).
      envoy_dynamic_module_type_module_buffer none = {NULL, 0};
      envoy_dynamic_module_callback_http_set_header(f, MCPGW_REQUEST_HEADER, keys[i], none);
      removed++;
    }
  }
  if (removed > 0) {
    // Envoy picked the route before the filter chain ran, possibly on a
    // client-supplied internal header: forget it.
    envoy_dynamic_module_callback_http_clear_route_cache(f);
  }
  // Read after removing: a removal may free memory an earlier read aliased.
  for (int i = 0; i < read_n; i++) {
    out[i].ptr = NULL;
    out[i].length = 0;
    if (!envoy_dynamic_module_callback_http_get_header(f, MCPGW_REQUEST_HEADER,
                                                       keys[read_first + i], &out[i], 0, NULL)) {
      out[i].ptr = NULL;
      out[i].length = 0;
    }
  }
  return removed;
}

size_t mcpgw_request_body(uintptr_t f, envoy_dynamic_module_type_envoy_buffer* out, size_t cap) {
  // When the current chunk is the decoding buffer itself (a filter before us
  // buffered the body), reading "Received" too would return the body twice.
  bool same = envoy_dynamic_module_callback_http_received_buffered_request_body(f);
  size_t nb = envoy_dynamic_module_callback_http_get_body_chunks_size(f, MCPGW_BUFFERED_REQUEST_BODY);
  size_t nr = same ? 0
                   : envoy_dynamic_module_callback_http_get_body_chunks_size(
                         f, MCPGW_RECEIVED_REQUEST_BODY);
  if (nb + nr > cap) {
    return nb + nr;
  }
  if (nb > 0 &&
      !envoy_dynamic_module_callback_http_get_body_chunks(f, MCPGW_BUFFERED_REQUEST_BODY, out)) {
    nb = 0;
  }
  if (nr > 0 && !envoy_dynamic_module_callback_http_get_body_chunks(
                    f, MCPGW_RECEIVED_REQUEST_BODY, out + nb)) {
    nr = 0;
  }
  return nb + nr;
}

size_t mcpgw_request_body_size(uintptr_t f) {
  size_t n = envoy_dynamic_module_callback_http_get_body_size(f, MCPGW_BUFFERED_REQUEST_BODY);
  if (!envoy_dynamic_module_callback_http_received_buffered_request_body(f)) {
    n += envoy_dynamic_module_callback_http_get_body_size(f, MCPGW_RECEIVED_REQUEST_BODY);
  }
  return n;
}

// replace_request_body makes body the whole request body, wherever Envoy
// currently holds it:
//  - in a body hook at end of stream, the body is the buffered chunks plus
//    the current chunk; on Continue Envoy moves the current chunk into the
//    buffer (commonHandleBufferData), so empty both and append to the current
//    chunk (append to "Buffered" when none exists would call addDecodedData);
//  - when the current chunk is the buffer, or outside a body hook (trailers,
//    scheduled event: "Received" does not exist and drain/append return
//    false), everything is in the buffer.
static void replace_request_body(uintptr_t f, const char* body, size_t len) {
  envoy_dynamic_module_type_module_buffer data = {body, len};
  bool same = envoy_dynamic_module_callback_http_received_buffered_request_body(f);
  envoy_dynamic_module_callback_http_drain_body(f, MCPGW_BUFFERED_REQUEST_BODY, SIZE_MAX);
  if (!same && envoy_dynamic_module_callback_http_drain_body(f, MCPGW_RECEIVED_REQUEST_BODY,
                                                             SIZE_MAX)) {
    envoy_dynamic_module_callback_http_append_body(f, MCPGW_RECEIVED_REQUEST_BODY, data);
    return;
  }
  envoy_dynamic_module_callback_http_append_body(f, MCPGW_BUFFERED_REQUEST_BODY, data);
}

void mcpgw_apply(uintptr_t f, int32_t header_type, const char* buf, const mcpgw_header_op* ops,
                 size_t n, const char* body, size_t body_len, bool clear_route) {
  for (size_t i = 0; i < n; i++) {
    envoy_dynamic_module_type_module_buffer k = {buf + ops[i].key_off, ops[i].key_len};
    envoy_dynamic_module_type_module_buffer v = {NULL, 0};
    if (ops[i].val_len > 0) {
      v.ptr = buf + ops[i].val_off;
      v.length = ops[i].val_len;
    }
    envoy_dynamic_module_callback_http_set_header(f, header_type, k, v);
  }
  if (body != NULL) {
    replace_request_body(f, body, body_len);
  }
  if (clear_route) {
    envoy_dynamic_module_callback_http_clear_route_cache(f);
  }
}

// response_header reads the response header keys[key] into out (ptr NULL
// when absent).
static void response_header(uintptr_t f, int key, envoy_dynamic_module_type_envoy_buffer* out) {
  out->ptr = NULL;
  out->length = 0;
  if (key < 0 || key >= MCPGW_MAX_KEYS ||
      !envoy_dynamic_module_callback_http_get_header(f, MCPGW_RESPONSE_HEADER, keys[key], out, 0,
                                                     NULL)) {
    out->ptr = NULL;
    out->length = 0;
  }
}

uint32_t mcpgw_response_status(uintptr_t f, bool* via_upstream, int header_key,
                               envoy_dynamic_module_type_envoy_buffer* header) {
  response_header(f, header_key, header);
  static const char status_key[] = ":status";
  static const char via[] = "via_upstream";
  envoy_dynamic_module_type_module_buffer key = {status_key, sizeof(status_key) - 1};
  envoy_dynamic_module_type_envoy_buffer v = {NULL, 0};
  uint32_t status = 0;
  if (envoy_dynamic_module_callback_http_get_header(f, MCPGW_RESPONSE_HEADER, key, &v, 0, NULL) &&
      v.ptr != NULL && v.length == 3) {
    for (size_t i = 0; i < 3; i++) {
      if (v.ptr[i] < '0' || v.ptr[i] > '9') {
        return 0;
      }
      status = status * 10 + (uint32_t)(v.ptr[i] - '0');
    }
  }
  envoy_dynamic_module_type_envoy_buffer d = {NULL, 0};
  *via_upstream = envoy_dynamic_module_callback_http_filter_get_attribute_string(
                      f, MCPGW_ATTRIBUTE_RESPONSE_CODE_DETAILS, &d) &&
                  d.ptr != NULL && d.length == sizeof(via) - 1 &&
                  memcmp(d.ptr, via, sizeof(via) - 1) == 0;
  return status;
}


size_t mcpgw_response_body(uintptr_t f, envoy_dynamic_module_type_envoy_buffer* out, size_t cap) {
  size_t n = envoy_dynamic_module_callback_http_get_body_chunks_size(f, MCPGW_RECEIVED_RESPONSE_BODY);
  if (n > cap || n == 0) {
    return n;
  }
  if (!envoy_dynamic_module_callback_http_get_body_chunks(f, MCPGW_RECEIVED_RESPONSE_BODY, out)) {
    return 0;
  }
  return n;
}

void mcpgw_replace_response_chunk(uintptr_t f, const char* body, size_t body_len) {
  envoy_dynamic_module_callback_http_drain_body(f, MCPGW_RECEIVED_RESPONSE_BODY, SIZE_MAX);
  if (body_len > 0) {
    envoy_dynamic_module_type_module_buffer data = {body, body_len};
    envoy_dynamic_module_callback_http_append_body(f, MCPGW_RECEIVED_RESPONSE_BODY, data);
  }
}

void mcpgw_send_json(uintptr_t f, uint32_t status, const char* body, size_t body_len,
                     const char* details, size_t details_len) {
  static const char ct_key[] = "content-type";
  static const char ct_val[] = "application/json";
  envoy_dynamic_module_type_module_http_header h = {ct_key, sizeof(ct_key) - 1, ct_val,
                                                    sizeof(ct_val) - 1};
  envoy_dynamic_module_type_module_buffer b = {body, body_len};
  envoy_dynamic_module_type_module_buffer d = {details, details_len};
  envoy_dynamic_module_callback_http_send_response(f, status, &h, 1, b, d);
}

void mcpgw_send_response(uintptr_t f, uint32_t status, const char* buf, const mcpgw_header_op* ops,
                         size_t n, const char* body, size_t body_len, const char* details,
                         size_t details_len) {
  envoy_dynamic_module_type_module_http_header hs[MCPGW_MAX_REPLY_HEADERS];
  if (n > MCPGW_MAX_REPLY_HEADERS) {
    n = MCPGW_MAX_REPLY_HEADERS;
  }
  for (size_t i = 0; i < n; i++) {
    hs[i].key_ptr = buf + ops[i].key_off;
    hs[i].key_length = ops[i].key_len;
    hs[i].value_ptr = buf + ops[i].val_off;
    hs[i].value_length = ops[i].val_len;
  }
  envoy_dynamic_module_type_module_buffer b = {body, body_len};
  envoy_dynamic_module_type_module_buffer d = {details, details_len};
  envoy_dynamic_module_callback_http_send_response(f, status, hs, n, b, d);
}

int32_t mcpgw_define_counter(uintptr_t config, const char* name, size_t name_len, size_t* id) {
  envoy_dynamic_module_type_module_buffer n = {name, name_len};
  return envoy_dynamic_module_callback_http_filter_config_define_counter(config, n, NULL, 0, id);
}

void mcpgw_increment_counters(uintptr_t f, const size_t* ids, const uint64_t* deltas, size_t n) {
  for (size_t i = 0; i < n; i++) {
    envoy_dynamic_module_callback_http_filter_increment_counter(f, ids[i], NULL, 0, deltas[i]);
  }
}

void mcpgw_log(int32_t level, const char* msg, size_t len) {
  envoy_dynamic_module_type_module_buffer m = {msg, len};
  envoy_dynamic_module_callback_log(level, m);
}

bool mcpgw_host_has(const char* symbol) { return dlsym(RTLD_DEFAULT, symbol) != NULL; }
