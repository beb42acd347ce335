// Command libmcpgw-golang is mcpgw's router as a plugin of contrib Envoy's
// golang filter (envoy.filters.http.golang): a shared object Envoy loads from
// the filter's library_path, serving plugin_name "mcpgw". Build:
//
//	CGO_ENABLED=1 go build -trimpath -buildmode=c-shared \
//	    -o build/bin/libmcpgw-golang.so ./filter/cmd/libmcpgw-golang
//
// This is the only package that imports the golang filter's cgo shim
// (contrib/golang/filters/http/source/go/pkg/http): its package init calls
// into Envoy (envoyGoFilterLogLevel), so any other binary importing it
// crashes outside Envoy. The plugin itself is plain Go in filter/golang.
//
// One Go runtime per Envoy process: load this .so (or any Go plugin .so, or a
// Go dynamic module) at most once per Envoy, under one library_id.
package main

import (
	"github.com/envoyproxy/envoy/contrib/golang/filters/http/source/go/pkg/http"

	"github.com/mcpgw/mcpgw/filter/golang"
)

func init() {
	// Registration only stores the factory: Envoy parses plugin configs
	// (golang.Parser) when it loads the filter config, after this init.
	http.RegisterHttpFilterFactoryAndConfigParser(golang.PluginName, golang.FilterFactory, golang.Parser{})
}

func main() {}
