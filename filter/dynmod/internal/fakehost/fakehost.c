// The Envoy callbacks the adapter imports, defined for tests. Each forwards
// to a Go function of this package (callbacks.go), which keeps the state;
// values handed out point to C memory, as Envoy's would point to its own.

#include "abi.h"
#include "_cgo_export.h"

bool envoy_dynamic_module_callback_http_get_header(uintptr_t f, int32_t header_type,
                                                   envoy_dynamic_module_type_module_buffer key,
                                                   envoy_dynamic_module_type_envoy_buffer* result,
                                                   size_t index, size_t* optional_size) {
  return fhGetHeader(f, header_type, (char*)key.ptr, key.length, result, index, optional_size);
}

bool envoy_dynamic_module_callback_http_set_header(uintptr_t f, int32_t header_type,
                                                   envoy_dynamic_module_type_module_buffer key,
                                                   envoy_dynamic_module_type_module_buffer value) {
  return fhSetHeader(f, header_type, (char*)key.ptr, key.length, (char*)value.ptr, value.length);
}

void envoy_dynamic_module_callback_http_clear_route_cache(uintptr_t f) { fhClearRouteCache(f); }

void envoy_dynamic_module_callback_http_send_response(
    uintptr_t f, uint32_t status_code, envoy_dynamic_module_type_module_http_header* headers,
    size_t headers_size, envoy_dynamic_module_type_module_buffer body,
    envoy_dynamic_module_type_module_buffer details) {
  fhSendResponseBegin(f, status_code, (char*)body.ptr, body.length, (char*)details.ptr,
                      details.length);
  for (size_t i = 0; i < headers_size; i++) {
    fhSendResponseHeader(f, (char*)headers[i].key_ptr, headers[i].key_length,
                         (char*)headers[i].value_ptr, headers[i].value_length);
  }
}

size_t envoy_dynamic_module_callback_http_get_body_chunks_size(uintptr_t f, int32_t body_type) {
  return fhBodyChunksSize(f, body_type);
}

size_t envoy_dynamic_module_callback_http_get_body_size(uintptr_t f, int32_t body_type) {
  return fhBodySize(f, body_type);
}

bool envoy_dynamic_module_callback_http_get_body_chunks(
    uintptr_t f, int32_t body_type, envoy_dynamic_module_type_envoy_buffer* result) {
  return fhBodyChunks(f, body_type, result);
}

bool envoy_dynamic_module_callback_http_drain_body(uintptr_t f, int32_t body_type, size_t n) {
  return fhDrainBody(f, body_type, n);
}

bool envoy_dynamic_module_callback_http_append_body(uintptr_t f, int32_t body_type,
                                                    envoy_dynamic_module_type_module_buffer data) {
  return fhAppendBody(f, body_type, (char*)data.ptr, data.length);
}

bool envoy_dynamic_module_callback_http_received_buffered_request_body(uintptr_t f) {
  return fhReceivedIsBuffered(f);
}

bool envoy_dynamic_module_callback_http_filter_get_attribute_string(
    uintptr_t f, int32_t id, envoy_dynamic_module_type_envoy_buffer* result) {
  return fhAttributeString(f, id, result);
}

uintptr_t envoy_dynamic_module_callback_http_filter_scheduler_new(uintptr_t f) {
  return fhSchedulerNew(f);
}

void envoy_dynamic_module_callback_http_filter_scheduler_commit(uintptr_t s, uint64_t event_id) {
  fhSchedulerCommit(s, event_id);
}

void envoy_dynamic_module_callback_http_filter_scheduler_delete(uintptr_t s) {
  fhSchedulerDelete(s);
}

void envoy_dynamic_module_callback_http_filter_continue_decoding(uintptr_t f) {
  fhContinueDecoding(f);
}

int32_t envoy_dynamic_module_callback_http_filter_config_define_counter(
    uintptr_t config, envoy_dynamic_module_type_module_buffer name,
    envoy_dynamic_module_type_module_buffer* label_names, size_t label_names_length,
    size_t* counter_id) {
  return fhDefineCounter(config, (char*)name.ptr, name.length, label_names_length, counter_id);
}

int32_t envoy_dynamic_module_callback_http_filter_increment_counter(
    uintptr_t f, size_t id, envoy_dynamic_module_type_module_buffer* label_values,
    size_t label_values_length, uint64_t value) {
  return fhIncrementCounter(f, id, label_values_length, value);
}

void envoy_dynamic_module_callback_log(int32_t level,
                                       envoy_dynamic_module_type_module_buffer message) {
  fhLog(level, (char*)message.ptr, message.length);
}

bool envoy_dynamic_module_callback_log_enabled(int32_t level) { return fhLogEnabled(level); }
