package controller

import (
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mcpgw/mcpgw/controller/api/v1alpha1"
	"github.com/mcpgw/mcpgw/filter/config"
)

func TestReadyCondition(t *testing.T) {
	srv := &config.Server{Name: "ns/a", URL: "http://a.ns.svc.cluster.local:80/mcp", Prefix: "a_"}
	acc := RegistrationResult{Accepted: accepted(), Server: srv}
	health := func(s BrokerServer) *BrokerHealth {
		s.Name = "ns/a"
		if s.URL == "" {
			s.URL, s.Prefix = srv.URL, srv.Prefix
		}
		return &BrokerHealth{Polled: true, Servers: map[string]BrokerServer{"ns/a": s}}
	}
	for _, tc := range []struct {
		name   string
		res    RegistrationResult
		h      *BrokerHealth
		status metav1.ConditionStatus
		reason string
		tools  int32 // -1: none reported
	}{
		{"not accepted", RegistrationResult{Accepted: notAccepted(v1alpha1.ReasonDisabled, "off")}, health(BrokerServer{State: "ready"}),
			metav1.ConditionFalse, v1alpha1.ReasonNotAccepted, -1},
		{"no broker configured", acc, nil, metav1.ConditionUnknown, v1alpha1.ReasonBrokerUnavailable, -1},
		{"not polled yet", acc, &BrokerHealth{}, metav1.ConditionUnknown, v1alpha1.ReasonPending, -1},
		{"broker down", acc, &BrokerHealth{Polled: true, Err: errors.New("refused")}, metav1.ConditionUnknown, v1alpha1.ReasonBrokerUnavailable, -1},
		{"not loaded yet", acc, &BrokerHealth{Polled: true}, metav1.ConditionUnknown, v1alpha1.ReasonPending, -1},
		{"older version loaded", acc, health(BrokerServer{State: "ready", URL: "http://old/mcp"}), metav1.ConditionUnknown, v1alpha1.ReasonPending, -1},
		{"ready", acc, health(BrokerServer{State: "ready", Tools: 4}), metav1.ConditionTrue, v1alpha1.ReasonBackendReady, 4},
		{"connecting", acc, health(BrokerServer{State: "connecting"}), metav1.ConditionFalse, v1alpha1.ReasonBackendConnecting, -1},
		{"invalid", acc, health(BrokerServer{State: "invalid", LastError: "no tools"}), metav1.ConditionFalse, v1alpha1.ReasonBackendInvalid, -1},
		{"unreachable", acc, health(BrokerServer{State: "unreachable"}), metav1.ConditionFalse, v1alpha1.ReasonBackendUnreachable, -1},
		{"unknown state", acc, health(BrokerServer{State: "sleeping"}), metav1.ConditionUnknown, v1alpha1.ReasonPending, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, tools := readyCondition(tc.res.Accepted, tc.res, tc.h)
			if c.Type != v1alpha1.ConditionReady || c.Status != tc.status || c.Reason != tc.reason || c.Message == "" {
				t.Errorf("got %+v, want %s/%s", c, tc.status, tc.reason)
			}
			if got := int32(-1); tools != nil {
				got = *tools
				if got != tc.tools {
					t.Errorf("tools = %d, want %d", got, tc.tools)
				}
			} else if tc.tools != -1 {
				t.Errorf("no tool count, want %d", tc.tools)
			}
		})
	}
}

// A failed write turns an accepted registration into a false Accepted:
// the status never claims what the gateway does not have.
func TestRegistrationStatusWriteError(t *testing.T) {
	reg := &v1alpha1.MCPServerRegistration{}
	reg.Generation = 4
	srv := &config.Server{Name: "ns/a", URL: "http://a/mcp"}
	now := metav1.NewTime(time.Unix(100, 0))
	st := registrationStatus(reg, RegistrationResult{Accepted: accepted(), Server: srv}, errors.New("forbidden"), &BrokerHealth{Polled: true}, now)
	if len(st.Conditions) != 2 {
		t.Fatalf("conditions %+v", st.Conditions)
	}
	acc, rdy := st.Conditions[0], st.Conditions[1]
	if acc.Status != metav1.ConditionFalse || acc.Reason != v1alpha1.ReasonConfigNotWritten || acc.ObservedGeneration != 4 {
		t.Errorf("Accepted = %+v", acc)
	}
	if rdy.Status != metav1.ConditionFalse || rdy.Reason != v1alpha1.ReasonNotAccepted {
		t.Errorf("Ready = %+v", rdy)
	}
	if st.URL != "" || st.ServerName != "" {
		t.Errorf("status names a server that is not in the config: %+v", st)
	}

	// The same verdict later keeps the transition time.
	reg.Status = st
	again := registrationStatus(reg, RegistrationResult{Accepted: accepted(), Server: srv}, errors.New("forbidden"), &BrokerHealth{Polled: true},
		metav1.NewTime(time.Unix(200, 0)))
	if !again.Conditions[0].LastTransitionTime.Equal(&now) {
		t.Errorf("transition time moved: %v", again.Conditions[0].LastTransitionTime)
	}
}
