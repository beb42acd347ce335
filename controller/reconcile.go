package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/mcpgw/mcpgw/controller/api/v1alpha1"
)

// Reconciler keeps the gateway config and the resources' statuses in line
// with the cluster. The config is one aggregate of every registration, so
// every event maps to the same request and the work queue collapses bursts
// into one pass: load everything, Build, sync the output, sync statuses.
type Reconciler struct {
	// Client reads from the manager's cache and writes statuses.
	Client client.Client
	// Base carries the settings of Input; Reconcile fills in the objects.
	Base Input
	// Sinks receive the rendered output (Secrets, a file, or both).
	Sinks []Sink
	// Health, if set, supplies the broker's view for Ready conditions.
	Health *HealthPoller
	// Resync re-runs a pass this often even without events, which repairs
	// out-of-band edits of the output.
	Resync time.Duration
	Logger *slog.Logger
	// Now is the clock for condition transition times (time.Now if nil).
	Now func() time.Time
}

// Reconcile performs one full pass; req is always the singleton request.
func (r *Reconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	in, err := r.load(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	out := Build(in)
	writeErr := r.syncOutput(ctx, out)
	conflicts, statusErr := r.syncStatuses(ctx, in, out, writeErr)
	if err := errors.Join(writeErr, statusErr); err != nil {
		return ctrl.Result{}, err // retried with backoff
	}
	if conflicts {
		// A stale cache: the watch event that refreshes it brings another
		// pass; this retry covers a lost event. Not worth an error log.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return ctrl.Result{RequeueAfter: r.Resync}, nil
}

// load lists every object Build needs from the cache.
func (r *Reconciler) load(ctx context.Context) (Input, error) {
	in := r.Base
	var regs v1alpha1.MCPServerRegistrationList
	var vss v1alpha1.MCPVirtualServerList
	var routes gatewayv1.HTTPRouteList
	var secrets corev1.SecretList
	for _, l := range []client.ObjectList{&regs, &vss, &routes, &secrets} {
		if err := r.Client.List(ctx, l); err != nil {
			return Input{}, fmt.Errorf("list %T: %w", l, err)
		}
	}
	in.Registrations, in.VirtualServers, in.Routes, in.Secrets = regs.Items, vss.Items, routes.Items, secrets.Items
	return in, nil
}

// syncOutput renders and writes the output to every sink; a failing sink
// does not stop the others.
func (r *Reconciler) syncOutput(ctx context.Context, out Output) error {
	rendered, err := Render(out)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range r.Sinks {
		changed, err := s.Write(ctx, rendered)
		if changed {
			r.logger().Info("gateway config written", "sink", fmt.Sprintf("%T", s), "servers", len(out.Config.Servers))
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// syncStatuses writes each resource's status where it differs from the
// desired one, so a pass with nothing new writes nothing. Conflicts are
// reported apart from other errors.
func (r *Reconciler) syncStatuses(ctx context.Context, in Input, out Output, writeErr error) (conflicts bool, _ error) {
	// The API server stores seconds; keeping the same precision here keeps
	// the comparison with the stored status exact.
	now := metav1.NewTime(r.now().Truncate(time.Second))
	var health *BrokerHealth
	if r.Health != nil {
		h := r.Health.Health()
		health = &h
	}
	var errs []error
	for i := range in.Registrations {
		reg := &in.Registrations[i]
		res := out.Registrations[types.NamespacedName{Namespace: reg.Namespace, Name: reg.Name}]
		want := registrationStatus(reg, res, writeErr, health, now)
		errs = append(errs, updateStatus(ctx, r.Client, reg, &reg.Status, want))
	}
	for i := range in.VirtualServers {
		vs := &in.VirtualServers[i]
		res := out.VirtualServerResults[types.NamespacedName{Namespace: vs.Namespace, Name: vs.Name}]
		want := virtualServerStatus(vs, res, writeErr, now)
		errs = append(errs, updateStatus(ctx, r.Client, vs, &vs.Status, want))
	}
	var other []error
	for _, err := range errs {
		if apierrors.IsConflict(err) {
			conflicts = true
		} else {
			other = append(other, err)
		}
	}
	return conflicts, errors.Join(other...)
}

// updateStatus sets *cur to want on obj and updates the status subresource
// if they differ. The update carries obj's resourceVersion: if the cache was
// stale the API server refuses it (a conflict, retried on the next pass)
// instead of the write silently missing fields the cache had not seen, as a
// merge patch computed against a stale object would. A resource deleted
// since the list is not an error.
func updateStatus[S any](ctx context.Context, c client.Client, obj client.Object, cur *S, want S) error {
	if equality.Semantic.DeepEqual(*cur, want) {
		return nil
	}
	*cur = want
	err := c.Status().Update(ctx, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Reconciler) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}
