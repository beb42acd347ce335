// Command fetch-kube builds the kube-apiserver and etcd that
// tests/controller runs, from the Go module proxy, into a per-version cache
// directory (skipping what is already there), and prints that directory:
//
//	export KUBEBUILDER_ASSETS=$(go run ./build/kube/cmd/fetch-kube)
//
// Run it from anywhere in the repository.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/mcpgw/mcpgw/build/kube"
	"github.com/mcpgw/mcpgw/tests/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	root, err := harness.RepoRoot()
	if err == nil {
		var dir string
		if dir, err = kube.Build(ctx, root, os.Stderr); err == nil {
			fmt.Println(dir)
			return
		}
	}
	fmt.Fprintln(os.Stderr, "fetch-kube:", err)
	os.Exit(1)
}
