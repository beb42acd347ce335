package controller

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mcpgw/mcpgw/controller/api/v1alpha1"
)

// maxMessage bounds condition messages that quote a backend's error.
const maxMessage = 1024

// registrationStatus computes a registration's desired status from Build's
// verdict, whether the config was written (writeErr) and the broker's
// health. Existing conditions keep their transition times when their status
// does not change.
func registrationStatus(reg *v1alpha1.MCPServerRegistration, res RegistrationResult, writeErr error, h *BrokerHealth, now metav1.Time) v1alpha1.MCPServerRegistrationStatus {
	acc := res.Accepted
	if writeErr != nil && acc.Status == metav1.ConditionTrue {
		// Valid, but the gateway cannot have it: say so rather than claim it.
		acc = notAccepted(v1alpha1.ReasonConfigNotWritten, "writing the gateway config failed: %s", truncate(writeErr.Error()))
		res.Server = nil
	}
	ready, tools := readyCondition(acc, res, h)
	st := v1alpha1.MCPServerRegistrationStatus{Conditions: append([]metav1.Condition(nil), reg.Status.Conditions...)}
	for _, c := range []metav1.Condition{acc, ready} {
		c.ObservedGeneration = reg.Generation
		c.LastTransitionTime = now
		meta.SetStatusCondition(&st.Conditions, c)
	}
	if res.Server != nil {
		st.ServerName, st.URL, st.Hostname = res.Server.Name, res.Server.URL, res.Server.Hostname
	}
	st.Tools = tools
	return st
}

// readyCondition tells whether the gateway serves the registration, from
// the broker's view of the server the config describes. A broker entry for
// an older URL or prefix is not taken as the current server's health.
func readyCondition(acc metav1.Condition, res RegistrationResult, h *BrokerHealth) (metav1.Condition, *int32) {
	c := func(s metav1.ConditionStatus, reason, format string, args ...any) metav1.Condition {
		return metav1.Condition{Type: v1alpha1.ConditionReady, Status: s, Reason: reason, Message: truncate(fmt.Sprintf(format, args...))}
	}
	switch {
	case acc.Status != metav1.ConditionTrue:
		return c(metav1.ConditionFalse, v1alpha1.ReasonNotAccepted, "not in the gateway config (%s)", acc.Reason), nil
	case h == nil:
		return c(metav1.ConditionUnknown, v1alpha1.ReasonBrokerUnavailable, "the controller has no broker status URL configured"), nil
	case !h.Polled:
		return c(metav1.ConditionUnknown, v1alpha1.ReasonPending, "the broker's status has not been read yet"), nil
	case h.Err != nil:
		return c(metav1.ConditionUnknown, v1alpha1.ReasonBrokerUnavailable, "reading the broker's status: %v", h.Err), nil
	}
	b, ok := h.Servers[res.Server.Name]
	if !ok || b.URL != res.Server.URL || b.Prefix != res.Server.Prefix {
		return c(metav1.ConditionUnknown, v1alpha1.ReasonPending,
			"the broker has not loaded this version of the server yet (config propagation to the pods can take a minute)"), nil
	}
	switch b.State {
	case "ready":
		n := int32(b.Tools)
		return c(metav1.ConditionTrue, v1alpha1.ReasonBackendReady, "%d tools, %d prompts, %d resources discovered (protocol %s)",
			b.Tools, b.Prompts, b.Resources, b.ProtocolVersion), &n
	case "connecting":
		msg := "the broker is connecting to " + b.URL
		if b.LastError != "" {
			msg += " (after: " + b.LastError + ")"
		}
		return c(metav1.ConditionFalse, v1alpha1.ReasonBackendConnecting, "%s", msg), nil
	case "invalid":
		return c(metav1.ConditionFalse, v1alpha1.ReasonBackendInvalid, "the backend is not a usable MCP server: %s", b.LastError), nil
	case "unreachable":
		return c(metav1.ConditionFalse, v1alpha1.ReasonBackendUnreachable, "the broker cannot reach %s: %s", b.URL, b.LastError), nil
	}
	return c(metav1.ConditionUnknown, v1alpha1.ReasonPending, "the broker reports the unknown state %q", b.State), nil
}

// virtualServerStatus computes a virtual server's desired status.
func virtualServerStatus(vs *v1alpha1.MCPVirtualServer, res VirtualServerResult, writeErr error, now metav1.Time) v1alpha1.MCPVirtualServerStatus {
	acc := res.Accepted
	if writeErr != nil {
		acc.Status = metav1.ConditionFalse
		acc.Reason = v1alpha1.ReasonConfigNotWritten
		acc.Message = "writing the gateway config failed: " + truncate(writeErr.Error())
	}
	st := v1alpha1.MCPVirtualServerStatus{Conditions: append([]metav1.Condition(nil), vs.Status.Conditions...)}
	for _, c := range []metav1.Condition{acc, res.ResolvedRefs} {
		c.ObservedGeneration = vs.Generation
		c.LastTransitionTime = now
		meta.SetStatusCondition(&st.Conditions, c)
	}
	if acc.Status == metav1.ConditionTrue {
		st.Path = res.Path
	}
	return st
}

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return s[:maxMessage] + "…"
}
