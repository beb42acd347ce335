// Command mcpgw-controller runs mcpgw's Kubernetes controller: it writes
// the gateway config (a Secret, or a file with -output-file) from
// MCPServerRegistration resources and reports their status.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/mcpgw/mcpgw/controller"
	"github.com/mcpgw/mcpgw/filter/config"
	"github.com/mcpgw/mcpgw/internal/logflags"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mcpgw-controller:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return controller.Run(ctx, o)
}

// flags holds what is not an Options field as it is.
type flags struct {
	kubeconfig, sessionKeyFile, sessionKeyEnv, logFormat, logLevel string
}

func parseFlags(args []string, stderr io.Writer) (controller.Options, error) {
	fs := flag.NewFlagSet("mcpgw-controller", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o controller.Options
	var f flags
	ns := os.Getenv("POD_NAMESPACE") // set from the downward API in the deployment
	if ns == "" {
		ns = "mcpgw-system"
	}
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&o.Namespace, "namespace", ns, "the controller's namespace, holding the output Secrets (default $POD_NAMESPACE)")
	fs.StringVar(&o.ConfigSecret, "config-secret", "mcpgw-config", "Secret to write the config into (key config.yaml); empty disables Secret output")
	fs.StringVar(&o.CredentialsSecret, "credentials-secret", "mcpgw-credentials", "Secret to copy backend credentials into (one key per credential)")
	fs.StringVar(&o.OutputFile, "output-file", "", "also write the config to this file (local use; credentials go to -credentials-dir)")
	fs.StringVar(&o.CredentialsDir, "credentials-dir", "/var/run/secrets/mcpgw/credentials", "where the broker and Envoy mount the credentials Secret (or where -output-file's credentials are written)")
	fs.StringVar(&f.sessionKeyFile, "session-key-file", "/var/run/secrets/mcpgw/session/session-key", "session key file path as the broker and Envoy see it (the controller never reads it)")
	fs.StringVar(&f.sessionKeyEnv, "session-key-env", "", "session key environment variable of the broker and Envoy (instead of -session-key-file)")
	fs.IntVar(&o.Gateway.MaxRequestBodyBytes, "max-request-body-bytes", 0, "router request body limit written to the config (0: the readers' default)")
	fs.IntVar(&o.Gateway.MaxSessions, "max-sessions", 0, "router session limit written to the config (0: the readers' default)")
	fs.StringVar(&o.ClusterDomain, "cluster-domain", controller.DefaultClusterDomain, "DNS suffix of Service names in backend URLs")
	fs.Func("service-address", "namespace/name:port=host:port: reach that Service port at host:port instead of its cluster DNS name, for a gateway run outside the cluster with -output-file (e.g. behind kubectl port-forward); repeatable", func(v string) error {
		svc, addr, ok := strings.Cut(v, "=")
		if !ok {
			return errors.New("want namespace/name:port=host:port")
		}
		if o.ServiceAddresses == nil {
			o.ServiceAddresses = map[string]string{}
		}
		o.ServiceAddresses[svc] = addr
		return nil
	})
	fs.StringVar(&o.BrokerStatusURL, "broker-status-url", "", "the broker's GET /status URL, read for Ready conditions (empty: Ready stays Unknown)")
	fs.StringVar(&o.Gateway.BrokerURL, "broker-url", "", "the broker's base URL as the routers in Envoy reach it, written into the config (gateway.brokerURL: they follow its revocation feed); default: -broker-status-url without /status")
	fs.DurationVar(&o.StatusInterval, "status-interval", 10*time.Second, "how often the broker's status is read")
	fs.DurationVar(&o.Resync, "resync", 5*time.Minute, "full pass interval without events (repairs out-of-band edits)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "0", "metrics listen address (0 disables)")
	fs.StringVar(&o.ProbeAddr, "probe-addr", ":8081", "health probe listen address (/healthz, /readyz; 0 disables)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if f.sessionKeyEnv != "" {
		f.sessionKeyFile = ""
	}
	o.Gateway.SessionKey = config.SecretRef{File: f.sessionKeyFile, Env: f.sessionKeyEnv}
	var errs []error
	var err error
	o.Logger, err = newLogger(f.logFormat, f.logLevel, stderr)
	errs = append(errs, err)
	o.RestConfig, err = restConfig(f.kubeconfig)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return o, err
	}
	return o, o.Validate()
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return ctrl.GetConfig()
}

func newLogger(format, level string, out io.Writer) (*slog.Logger, error) {
	return logflags.New(format, level, out)
}
