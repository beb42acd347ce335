// Command libmcpgw-dynmod is mcpgw's router as an Envoy dynamic module: a
// shared object Envoy loads for dynamic_module_config name "mcpgw-dynmod"
// (file libmcpgw-dynmod.so, found via ENVOY_DYNAMIC_MODULES_SEARCH_PATH).
// Build:
//
//	CGO_ENABLED=1 go build -buildmode=c-shared -o build/bin/libmcpgw-dynmod.so ./filter/cmd/libmcpgw-dynmod
//
// All the code lives in package filter/dynmod; a c-shared build needs a
// main package.
package main

import _ "github.com/mcpgw/mcpgw/filter/dynmod"

func main() {}
