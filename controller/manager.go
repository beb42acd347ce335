package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/mcpgw/mcpgw/controller/api/v1alpha1"
	"github.com/mcpgw/mcpgw/filter/config"
)

// Options configure Run. Validate reports every problem at once.
type Options struct {
	// RestConfig reaches the API server.
	RestConfig *rest.Config
	// Namespace is the controller's own, where the output Secrets live.
	Namespace string
	// ConfigSecret and CredentialsSecret name the output Secrets; an empty
	// ConfigSecret disables Secret output.
	ConfigSecret, CredentialsSecret string
	// OutputFile, if set, also writes the config to this file (local use);
	// the credentials then go to CredentialsDir.
	OutputFile string
	// CredentialsDir is where the readers find credential files.
	CredentialsDir string
	// Gateway is copied into the config (session key reference, limits,
	// the broker's URL for the routers). An empty BrokerURL is derived from
	// BrokerStatusURL (without its /status), which suits readers that reach
	// the broker by the same name as the controller.
	Gateway config.Gateway
	// ClusterDomain is the Service DNS suffix (default cluster.local).
	ClusterDomain string
	// ServiceAddresses maps Service ports, keyed "namespace/name:port" as
	// an HTTPRoute's backendRef names them, to the "host:port" where the
	// gateway reaches them directly. It is for running the gateway outside
	// the cluster (OutputFile, read by a local broker and Envoy as in
	// `make run`) against a cluster's resources, where <svc>.<ns>.svc names
	// do not resolve: map a Service to the local end of
	// `kubectl port-forward svc/weather 18080:8080` (team-a/weather:8080=
	// 127.0.0.1:18080), or to an MCP server run on the developer's machine.
	//
	// A mapped server's URL is http://<address><path>, and its hostname
	// (the :authority the router sets) is the address too, not the
	// HTTPRoute's hostname: the local Envoy routes calls by address (an
	// ORIGINAL_DST cluster, envoy/local.yaml.tmpl) rather than through the
	// HTTPRoute, so the backend gets the same Host from routed calls as
	// from the broker's own session, and a server bound to loopback (the
	// go-sdk's DNS-rebinding protection) accepts both. This is why the
	// mapping is an explicit option for local use rather than something
	// derived from the cluster (an ExternalName Service, say): in-cluster
	// readers resolve Services themselves, and a route's hostname must stay
	// the :authority there. Validate therefore refuses it with Secret
	// output.
	ServiceAddresses map[string]string
	// BrokerStatusURL is the broker's GET /status; empty leaves Ready
	// Unknown.
	BrokerStatusURL string
	// StatusInterval is how often the broker's status is read.
	StatusInterval time.Duration
	// Resync re-runs a full pass this often without events.
	Resync time.Duration
	// MetricsAddr and ProbeAddr are the manager's listeners ("" or "0"
	// disables).
	MetricsAddr, ProbeAddr string
	Logger                 *slog.Logger
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	if o.RestConfig == nil {
		errs = append(errs, errors.New("no Kubernetes client config"))
	}
	if o.ConfigSecret == "" && o.OutputFile == "" {
		errs = append(errs, errors.New("no output: set a config Secret name or an output file"))
	}
	if o.ConfigSecret != "" && (o.Namespace == "" || o.CredentialsSecret == "") {
		errs = append(errs, errors.New("Secret output needs the namespace and the credentials Secret name"))
	}
	if o.CredentialsDir == "" {
		errs = append(errs, errors.New("the credentials directory is required"))
	}
	probe := config.Config{Version: config.Version, Gateway: o.gateway()}
	if err := probe.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("gateway settings: %w", err))
	}
	if o.BrokerStatusURL != "" && o.StatusInterval <= 0 {
		errs = append(errs, errors.New("the broker status interval must be positive"))
	}
	if len(o.ServiceAddresses) > 0 && o.ConfigSecret != "" {
		errs = append(errs, errors.New("service addresses are for a gateway outside the cluster: use them with the output file only, not with a config Secret"))
	}
	for _, k := range slices.Sorted(maps.Keys(o.ServiceAddresses)) {
		if err := validateServiceAddress(k, o.ServiceAddresses[k]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// serviceKeyPattern is "namespace/name:port" of a Service port.
var serviceKeyPattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?:[0-9]{1,5}$`)

func validateServiceAddress(key, addr string) error {
	if !serviceKeyPattern.MatchString(key) {
		return fmt.Errorf("service address %q: the Service must be given as namespace/name:port", key)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("service address of %s: %q is not host:port", key, addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("service address of %s: %q has no valid port", key, addr)
	}
	// The address becomes the server's hostname: the config must accept it.
	probe := config.Server{Name: "s", URL: "http://" + addr + "/", Hostname: addr}
	c := config.Config{Version: config.Version, Gateway: config.Gateway{SessionKey: config.SecretRef{File: "k"}}, Servers: []config.Server{probe}}
	if err := c.Validate(); err != nil {
		msg := strings.ReplaceAll(strings.ReplaceAll(err.Error(), "servers[0].", ""), "\n", "; ")
		return fmt.Errorf("service address of %s: %s", key, msg)
	}
	return nil
}

// gateway returns the gateway settings to write: Gateway, with BrokerURL
// derived from BrokerStatusURL when unset.
func (o *Options) gateway() config.Gateway {
	g := o.Gateway
	if g.BrokerURL == "" && o.BrokerStatusURL != "" {
		if u, err := url.Parse(o.BrokerStatusURL); err == nil {
			u.Path, u.RawPath, u.RawQuery, u.Fragment = strings.TrimSuffix(u.Path, "/status"), "", "", ""
			g.BrokerURL = u.String()
		}
	}
	return g
}

// Scheme returns a scheme with every kind the controller reads.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, gatewayv1.Install, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err) // static registrations; cannot fail at run time
		}
	}
	return s
}

// Run starts the controller and blocks until ctx ends.
func Run(ctx context.Context, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	// controller-runtime's packages log through a global logger and complain
	// loudly if it was never set.
	ctrl.SetLogger(logr.FromSlogHandler(o.Logger.Handler()))
	if o.MetricsAddr == "" {
		o.MetricsAddr = "0" // controller-runtime would default to :8080
	}
	mgr, err := ctrl.NewManager(o.RestConfig, ctrl.Options{
		Scheme: Scheme(),
		// Only opted-in credential Secrets are cached (and so readable to
		// Build): the controller never holds the namespaces' other Secrets.
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{CredentialLabel: "true"})},
		}},
		Metrics:                metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress: o.ProbeAddr,
		Logger:                 logr.FromSlogHandler(o.Logger.Handler()),
	})
	if err != nil {
		return err
	}
	if o.ProbeAddr != "" && o.ProbeAddr != "0" {
		if err := mgr.AddHealthzCheck("ping", func(*http.Request) error { return nil }); err != nil {
			return err
		}
		synced := func(r *http.Request) error {
			if !mgr.GetCache().WaitForCacheSync(r.Context()) {
				return errors.New("informer caches not synced")
			}
			return nil
		}
		if err := mgr.AddReadyzCheck("cache", synced); err != nil {
			return err
		}
	}
	r := newReconciler(mgr, o)
	if err := r.SetupWithManager(mgr); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

func newReconciler(mgr manager.Manager, o Options) *Reconciler {
	r := &Reconciler{
		Client: mgr.GetClient(),
		Base: Input{Gateway: o.gateway(), CredentialsDir: o.CredentialsDir, ClusterDomain: o.ClusterDomain,
			ServiceAddresses: o.ServiceAddresses},
		Resync: o.Resync,
		Logger: o.Logger,
	}
	if o.ConfigSecret != "" {
		r.Sinks = append(r.Sinks, &SecretSink{
			Reader: mgr.GetAPIReader(), Writer: mgr.GetClient(), Namespace: o.Namespace,
			ConfigName: o.ConfigSecret, CredentialsName: o.CredentialsSecret,
		})
	}
	if o.OutputFile != "" {
		r.Sinks = append(r.Sinks, &FileSink{Path: o.OutputFile, CredentialsDir: o.CredentialsDir})
	}
	if o.BrokerStatusURL != "" {
		r.Health = NewHealthPoller(o.BrokerStatusURL, o.StatusInterval, o.Logger)
	}
	return r
}

// singleton is the one request every event maps to.
var singleton = reconcile.Request{NamespacedName: types.NamespacedName{Name: "gateway-config"}}

// SetupWithManager registers the watches. Our own kinds are watched whole,
// status included: the pass after our own status write is a cheap no-op,
// and it is what corrects a status computed from a stale cache. HTTPRoute
// status belongs to the gateway implementation and changes often, so only
// spec (generation) changes count there.
func (r *Reconciler) SetupWithManager(mgr manager.Manager) error {
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{singleton}
	})
	gen := builder.WithPredicates(predicate.GenerationChangedPredicate{})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("mcpgw-config").
		// Several managers run in one test process; names need not be unique.
		WithOptions(ctrlcontroller.Options{SkipNameValidation: ptr.To(true)}).
		Watches(&v1alpha1.MCPServerRegistration{}, all).
		Watches(&v1alpha1.MCPVirtualServer{}, all).
		Watches(&gatewayv1.HTTPRoute{}, all, gen).
		Watches(&corev1.Secret{}, all)
	if r.Health != nil {
		if err := mgr.Add(r.Health); err != nil {
			return err
		}
		b = b.WatchesRawSource(source.Channel(r.Health.Events(), all))
	}
	return b.Complete(r)
}
