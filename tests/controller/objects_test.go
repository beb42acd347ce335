package controller_test

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/mcpgw/mcpgw/controller"
	"github.com/mcpgw/mcpgw/controller/api/v1alpha1"
)

func httpRoute(ns, name, hostname, service string, port int32) *gatewayv1.HTTPRoute {
	r := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
				Name: "mcpgw", Namespace: ptr.To(gatewayv1.Namespace(systemNS)),
			}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{
				BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
					Name: gatewayv1.ObjectName(service), Port: ptr.To(port),
				}},
			}}}},
		},
	}
	if hostname != "" {
		r.Spec.Hostnames = []gatewayv1.Hostname{gatewayv1.Hostname(hostname)}
	}
	return r
}

func registration(ns, name, route, prefix string) *v1alpha1.MCPServerRegistration {
	return &v1alpha1.MCPServerRegistration{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.MCPServerRegistrationSpec{TargetRef: v1alpha1.TargetReference{Name: route}, Prefix: prefix},
	}
}

func credentialSecret(ns, name string, labelled bool, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	if labelled {
		s.Labels = map[string]string{controller.CredentialLabel: "true"}
	}
	return s
}

// want is the expected state of one registration condition.
type want struct {
	typ    string
	status metav1.ConditionStatus
	reason string
}

func accepted(status metav1.ConditionStatus, reason string) want {
	return want{v1alpha1.ConditionAccepted, status, reason}
}

func ready(status metav1.ConditionStatus, reason string) want {
	return want{v1alpha1.ConditionReady, status, reason}
}

// waitRegistration waits until the registration's conditions match, for its
// current generation, and returns it.
func (e *env) waitRegistration(ns, name string, wants ...want) *v1alpha1.MCPServerRegistration {
	e.t.Helper()
	var reg v1alpha1.MCPServerRegistration
	eventually(e.t, fmt.Sprintf("status of %s/%s", ns, name), func() error {
		if err := e.c.Get(e.ctx(), types.NamespacedName{Namespace: ns, Name: name}, &reg); err != nil {
			return err
		}
		return checkConditions(reg.Generation, reg.Status.Conditions, wants)
	})
	return &reg
}

func (e *env) waitVirtualServer(ns, name string, wants ...want) *v1alpha1.MCPVirtualServer {
	e.t.Helper()
	var vs v1alpha1.MCPVirtualServer
	eventually(e.t, fmt.Sprintf("status of %s/%s", ns, name), func() error {
		if err := e.c.Get(e.ctx(), types.NamespacedName{Namespace: ns, Name: name}, &vs); err != nil {
			return err
		}
		return checkConditions(vs.Generation, vs.Status.Conditions, wants)
	})
	return &vs
}

func checkConditions(gen int64, conds []metav1.Condition, wants []want) error {
	for _, w := range wants {
		c := meta.FindStatusCondition(conds, w.typ)
		switch {
		case c == nil:
			return fmt.Errorf("no %s condition", w.typ)
		case c.ObservedGeneration != gen:
			return fmt.Errorf("%s: observedGeneration %d, want %d", w.typ, c.ObservedGeneration, gen)
		case c.Status != w.status || c.Reason != w.reason:
			return fmt.Errorf("%s is %s/%s (%s), want %s/%s", w.typ, c.Status, c.Reason, c.Message, w.status, w.reason)
		case c.LastTransitionTime.IsZero() || c.Message == "":
			return fmt.Errorf("%s has no transition time or message", w.typ)
		}
	}
	return nil
}

// condition returns one condition of a registration.
func condition(reg *v1alpha1.MCPServerRegistration, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(reg.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}
