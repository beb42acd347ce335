// Package fakeapi is a test-only, pure-Go stand-in for contrib Envoy's golang
// filter (Envoy v1.39.1): it drives an api.StreamFilter the way
// golang_filter.cc and processor_state.cc do, and implements the api
// interfaces the filter calls (header maps, buffers, callbacks, stream info,
// config callbacks, logging) with the rules of Envoy's C side (cgo.cc) and of
// the shim (pkg/http), so adapter bugs show up as they would in Envoy:
//
//   - the decoder and encoder state machines (WaitingHeader, ProcessingData,
//     WaitingAllData, ...) and what each returned api.StatusType does with
//     them, including StopAndBuffer buffering, trailers and async Running;
//   - Continue and SendLocalReply are posted to the worker's dispatcher,
//     always; header writes and route cache clears only when called from
//     another goroutine than the stream's worker; a stream's posted work runs
//     after each hook, or when the test calls Await;
//   - the API fails once Envoy stopped processing in Go or destroyed the
//     filter, by panicking with the shim's messages; the shim's entry points
//     turn other panics into its plain-text 500 reply (recorded, so a test
//     sees a panic the adapter let escape);
//   - local replies from the decoder pass through the filter's EncodeHeaders,
//     as Envoy sends them through the encoder chain; from the encoder they
//     replace the response.
//
// The "worker" is the goroutine that created the Stream; calls from any other
// goroutine are off-thread. Only _test.go files may import this package.
package fakeapi
