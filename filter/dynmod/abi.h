// Minimal C declarations of the Envoy dynamic-modules ABI used by mcpgw's
// HTTP filter module: only the types, hooks and callbacks we need. Envoy's
// own abi.h is not available as a Go module, so every declaration here is
// derived from the v1.39.1 sources in the Go module cache
// (github.com/envoyproxy/envoy@v1.39.1, ABI "v0.1.0"):
//
//   H  source/extensions/filters/http/dynamic_modules/filter_config.cc
//      (which hooks Envoy looks up, how it calls config_new)
//   F  source/extensions/filters/http/dynamic_modules/filter.cc (hook calls)
//   A  source/extensions/filters/http/dynamic_modules/abi_impl.cc (callbacks)
//   T  test/extensions/dynamic_modules/test_data/c/no_op_no_optional_abi.c
//      (a C module implementing every required hook: exact hook signatures)
//   S  envoy/http/filter.h (Envoy casts our status values to these enums)
//
// Envoy 1.40.0 (ABI "v0.2.0") was checked against the same declarations
// (its sources are not in the module cache; BUILD.md says how):
//   - it looks up the same hooks (symbols_test.go reads the names in its
//     binary) and provides every callback below, with the same argument
//     registers in its machine code;
//   - its changelog's ABI changes that touch this file: the destroy hook
//     runs after the stream is gone (callbacks needing the stream are
//     no-ops there; the module exports its counters at stream_complete),
//     modules are loaded RTLD_NOW (a callback missing from Envoy fails the
//     load), and envoy_dynamic_module_callback_log is deprecated in favour
//     of _log_v2 (it still works; its lines carry no source location);
//   - the attribute enum kept its order up to ResponseCodeDetails (16): the
//     adapter table's via_upstream rows pass on the real 1.40.0.
// The module reports "v0.2.0" to an Envoy that has _log_v2, else "v0.1.0"
// (abiversion.go), so each Envoy logs that the ABI matched.
//
// Opaque pointers are declared as uintptr_t, not void*: the Go side passes
// them around as integers and never dereferences them (and Go code must not
// hold Envoy pointers typed as Go pointers). On x86-64/arm64 both are the
// same size and are passed in the same registers, so the ABI is identical.
// Enums are declared as int32_t for the same reason (C enums are int-sized).
//
// The hook declarations double as a compile-time check: cgo copies this
// header into _cgo_export.h next to its own prototypes of our //export
// functions, so a Go hook whose signature drifts from these declarations
// fails to compile.

#ifndef MCPGW_ENVOY_ABI_H
#define MCPGW_ENVOY_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// ---------------------------------------------------------------- types --

// envoy_dynamic_module_type_envoy_buffer: memory owned by Envoy, valid only
// during the hook that produced it. (A: bodyBufferToModule, getHeaderValueImpl)
typedef struct {
  const char* ptr;
  size_t length;
} envoy_dynamic_module_type_envoy_buffer;

// envoy_dynamic_module_type_module_buffer: memory owned by the module; Envoy
// copies what it keeps before the callback returns. (A: setHeaderValueImpl)
typedef struct {
  const char* ptr;
  size_t length;
} envoy_dynamic_module_type_module_buffer;

// envoy_dynamic_module_type_module_http_header (A: send_response).
typedef struct {
  const char* key_ptr;
  size_t key_length;
  const char* value_ptr;
  size_t value_length;
} envoy_dynamic_module_type_module_http_header;

// envoy_dynamic_module_type_http_header_type (A: getHeaderMapByType).
#define MCPGW_REQUEST_HEADER 0
#define MCPGW_REQUEST_TRAILER 1
#define MCPGW_RESPONSE_HEADER 2
#define MCPGW_RESPONSE_TRAILER 3

// envoy_dynamic_module_type_http_body_type (A: getBufferByType). "Received"
// is the chunk of the current body hook; "Buffered" is what earlier
// StopIterationAndBuffer returns accumulated (decodingBuffer()).
#define MCPGW_RECEIVED_REQUEST_BODY 0
#define MCPGW_BUFFERED_REQUEST_BODY 1
#define MCPGW_RECEIVED_RESPONSE_BODY 2
#define MCPGW_BUFFERED_RESPONSE_BODY 3

// envoy_dynamic_module_type_attribute_id_ResponseCodeDetails ("response.
// code_details"), the 17th entry of the attribute enum. Served for HTTP
// filters by the shared ContextAccessor fallback of
// envoy_dynamic_module_callback_http_filter_get_attribute_string (A). The
// number was checked against the real 1.39.1 binary: in the response
// headers hook of a backend's 404 it reads "via_upstream".
#define MCPGW_ATTRIBUTE_RESPONSE_CODE_DETAILS 16

// envoy_dynamic_module_type_log_level (spdlog order, see base_logger.h).
#define MCPGW_LOG_TRACE 0
#define MCPGW_LOG_DEBUG 1
#define MCPGW_LOG_INFO 2
#define MCPGW_LOG_WARN 3
#define MCPGW_LOG_ERROR 4
#define MCPGW_LOG_CRITICAL 5

// Hook return values: Envoy static_casts them to its filter enums (F, S).
#define MCPGW_HEADERS_CONTINUE 0        // FilterHeadersStatus::Continue
#define MCPGW_HEADERS_STOP_ITERATION 1  // FilterHeadersStatus::StopIteration
#define MCPGW_BODY_CONTINUE 0           // FilterDataStatus::Continue
#define MCPGW_BODY_STOP_AND_BUFFER 1    // FilterDataStatus::StopIterationAndBuffer
#define MCPGW_BODY_STOP_NO_BUFFER 3     // FilterDataStatus::StopIterationNoBuffer
#define MCPGW_TRAILERS_CONTINUE 0       // FilterTrailersStatus::Continue
#define MCPGW_TRAILERS_STOP_ITERATION 1 // FilterTrailersStatus::StopIteration

// ------------------------------------------------- hooks (module exports) --
// All 21 are required by Envoy 1.39.1 (H: every lookup followed by
// RETURN_IF_NOT_OK_REF rejects the filter config when the symbol is missing)
// and looked up by 1.40.0 under the same names.
// Signatures from T. The last four parameters of http_callout_done and the
// stream hooks are pointers we never read; they are declared as uintptr_t.

// Returns the ABI version string: "v0.1.0" for 1.39, "v0.2.0" for 1.40 (NULL
// is fatal; 1.39 reads it after the hook returns, 1.40 copies it at once).
char* envoy_dynamic_module_on_program_init(void);
uintptr_t envoy_dynamic_module_on_http_filter_config_new(
    uintptr_t filter_config_envoy_ptr, envoy_dynamic_module_type_envoy_buffer name,
    envoy_dynamic_module_type_envoy_buffer config);
void envoy_dynamic_module_on_http_filter_config_destroy(uintptr_t filter_config_ptr);
uintptr_t envoy_dynamic_module_on_http_filter_new(uintptr_t filter_config_ptr,
                                                  uintptr_t filter_envoy_ptr);
int32_t envoy_dynamic_module_on_http_filter_request_headers(uintptr_t filter_envoy_ptr,
                                                            uintptr_t filter_module_ptr,
                                                            bool end_of_stream);
int32_t envoy_dynamic_module_on_http_filter_request_body(uintptr_t filter_envoy_ptr,
                                                         uintptr_t filter_module_ptr,
                                                         bool end_of_stream);
int32_t envoy_dynamic_module_on_http_filter_request_trailers(uintptr_t filter_envoy_ptr,
                                                             uintptr_t filter_module_ptr);
int32_t envoy_dynamic_module_on_http_filter_response_headers(uintptr_t filter_envoy_ptr,
                                                             uintptr_t filter_module_ptr,
                                                             bool end_of_stream);
int32_t envoy_dynamic_module_on_http_filter_response_body(uintptr_t filter_envoy_ptr,
                                                          uintptr_t filter_module_ptr,
                                                          bool end_of_stream);
int32_t envoy_dynamic_module_on_http_filter_response_trailers(uintptr_t filter_envoy_ptr,
                                                              uintptr_t filter_module_ptr);
void envoy_dynamic_module_on_http_filter_stream_complete(uintptr_t filter_envoy_ptr,
                                                         uintptr_t filter_module_ptr);
void envoy_dynamic_module_on_http_filter_destroy(uintptr_t filter_module_ptr);
void envoy_dynamic_module_on_http_filter_http_callout_done(
    uintptr_t filter_envoy_ptr, uintptr_t filter_module_ptr, uint64_t callout_id, int32_t result,
    uintptr_t headers, size_t headers_size, uintptr_t body_vector, size_t body_vector_size);
void envoy_dynamic_module_on_http_filter_scheduled(uintptr_t filter_envoy_ptr,
                                                   uintptr_t filter_module_ptr, uint64_t event_id);
void envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    uintptr_t filter_envoy_ptr, uintptr_t filter_module_ptr);
void envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    uintptr_t filter_envoy_ptr, uintptr_t filter_module_ptr);
void envoy_dynamic_module_on_http_filter_http_stream_headers(
    uintptr_t filter_envoy_ptr, uintptr_t filter_module_ptr, uint64_t stream_handle,
    uintptr_t headers, size_t headers_size, bool end_stream);
void envoy_dynamic_module_on_http_filter_http_stream_data(uintptr_t filter_envoy_ptr,
                                                          uintptr_t filter_module_ptr,
                                                          uint64_t stream_handle, uintptr_t data,
                                                          size_t data_count, bool end_stream);
void envoy_dynamic_module_on_http_filter_http_stream_trailers(uintptr_t filter_envoy_ptr,
                                                              uintptr_t filter_module_ptr,
                                                              uint64_t stream_handle,
                                                              uintptr_t trailers,
                                                              size_t trailers_size);
void envoy_dynamic_module_on_http_filter_http_stream_complete(uintptr_t filter_envoy_ptr,
                                                              uintptr_t filter_module_ptr,
                                                              uint64_t stream_handle);
void envoy_dynamic_module_on_http_filter_http_stream_reset(uintptr_t filter_envoy_ptr,
                                                           uintptr_t filter_module_ptr,
                                                           uint64_t stream_handle,
                                                           int32_t reset_reason);

// ------------------------------------------------ callbacks (Envoy exports) --
// Resolved from the envoy binary when it dlopens the module. They may only be
// called on the worker thread of the hook that is running (or of the
// scheduled event), except where noted.

// A: bool get_header(filter, header_type, key, result*, index, optional_size*).
// result aliases the header map; valid until the map changes or the hook ends.
// The key is lower-cased by Envoy (a copy), so any case works.
bool envoy_dynamic_module_callback_http_get_header(uintptr_t filter_envoy_ptr,
                                                   int32_t header_type,
                                                   envoy_dynamic_module_type_module_buffer key,
                                                   envoy_dynamic_module_type_envoy_buffer* result,
                                                   size_t index, size_t* optional_size);
// A: setHeaderValueImpl: a NULL or empty value REMOVES the header (all values).
bool envoy_dynamic_module_callback_http_set_header(uintptr_t filter_envoy_ptr,
                                                   int32_t header_type,
                                                   envoy_dynamic_module_type_module_buffer key,
                                                   envoy_dynamic_module_type_module_buffer value);
// A: clears the cached route (downstreamCallbacks()->clearRouteCache()), so
// the router filter re-picks the route from the headers as they are then.
void envoy_dynamic_module_callback_http_clear_route_cache(uintptr_t filter_envoy_ptr);
// A: sendLocalReply(code, body, modify_headers, grpc_status=0, details). The
// headers are added (addCopy) after Envoy's defaults, and Envoy keeps a
// content-type set this way. Sets sent_local_reply_ so none of our encode
// hooks run for the reply (F: encodeHeaders).
void envoy_dynamic_module_callback_http_send_response(
    uintptr_t filter_envoy_ptr, uint32_t status_code,
    envoy_dynamic_module_type_module_http_header* headers_vector, size_t headers_vector_size,
    envoy_dynamic_module_type_module_buffer body, envoy_dynamic_module_type_module_buffer details);
// A: body chunks are views of Envoy's Buffer::Instance slices.
size_t envoy_dynamic_module_callback_http_get_body_chunks_size(uintptr_t filter_envoy_ptr,
                                                               int32_t body_type);
bool envoy_dynamic_module_callback_http_get_body_chunks(
    uintptr_t filter_envoy_ptr, int32_t body_type,
    envoy_dynamic_module_type_envoy_buffer* result_buffer_vector);
// A: the byte length of the buffer of that type; 0 when it does not exist.
size_t envoy_dynamic_module_callback_http_get_body_size(uintptr_t filter_envoy_ptr,
                                                        int32_t body_type);
// A: drain clamps number_of_bytes to the buffer length; both return false
// when the buffer does not exist (e.g. "Received" outside a body hook).
bool envoy_dynamic_module_callback_http_drain_body(uintptr_t filter_envoy_ptr, int32_t body_type,
                                                   size_t number_of_bytes);
bool envoy_dynamic_module_callback_http_append_body(uintptr_t filter_envoy_ptr, int32_t body_type,
                                                    envoy_dynamic_module_type_module_buffer data);
// A: true when the current chunk IS the decoding buffer (an earlier filter
// buffered the body and resumed us with it): reading both would double it.
bool envoy_dynamic_module_callback_http_received_buffered_request_body(uintptr_t filter_envoy_ptr);
// A: the ContextAccessor fallback serves ResponseCodeDetails from StreamInfo.
bool envoy_dynamic_module_callback_http_filter_get_attribute_string(
    uintptr_t filter_envoy_ptr, int32_t attribute_id,
    envoy_dynamic_module_type_envoy_buffer* result);
// A: scheduler_new must run on the worker (it captures a weak_ptr to the
// filter); commit is safe from any thread and becomes a no-op once the
// filter is gone; delete only drops the weak_ptr (any thread).
uintptr_t envoy_dynamic_module_callback_http_filter_scheduler_new(uintptr_t filter_envoy_ptr);
void envoy_dynamic_module_callback_http_filter_scheduler_commit(uintptr_t scheduler, uint64_t event_id);
void envoy_dynamic_module_callback_http_filter_scheduler_delete(uintptr_t scheduler);
// A: resumes a decode direction stopped by our hook (no-op if not stopped).
void envoy_dynamic_module_callback_http_filter_continue_decoding(uintptr_t filter_envoy_ptr);
// A: counters must be defined during config_new (afterwards: result Frozen);
// ids are per filter config. Returns envoy_dynamic_module_type_metrics_result
// (0 = Success). increment_counter reaches the filter config, not the
// stream, so it also works in 1.40's late destroy hook (seen on 1.40.0).
int32_t envoy_dynamic_module_callback_http_filter_config_define_counter(
    uintptr_t filter_config_envoy_ptr, envoy_dynamic_module_type_module_buffer name,
    envoy_dynamic_module_type_module_buffer* label_names, size_t label_names_length,
    size_t* counter_id_ptr);
int32_t envoy_dynamic_module_callback_http_filter_increment_counter(
    uintptr_t filter_envoy_ptr, size_t id, envoy_dynamic_module_type_module_buffer* label_values,
    size_t label_values_length, uint64_t value);
// Common ABI (source/extensions/dynamic_modules/abi_impl.cc, not in the Go
// module; signature from test/extensions/dynamic_modules/abi_impl_test.cc and
// test_data/c/stat_sink_integration_test.c). Writes to Envoy's
// "dynamic_modules" logger; spdlog loggers are thread-safe, so these two are
// callable from any thread. 1.40 deprecates _log for _log_v2(level, message,
// source_file, source_line), whose only gain is a source location the module
// has no cheap way to give; the module calls _log on both, and uses _log_v2
// only to recognize 1.40 (abiversion.go).
void envoy_dynamic_module_callback_log(int32_t level, envoy_dynamic_module_type_module_buffer message);
bool envoy_dynamic_module_callback_log_enabled(int32_t level);

#endif // MCPGW_ENVOY_ABI_H
