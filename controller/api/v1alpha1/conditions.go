package v1alpha1

// Condition types. Accepted and Ready are deliberately separate: Accepted
// says the controller put the resource into the gateway config; Ready says
// the gateway actually reached the backend and discovered its tools, as the
// broker reports it, never assumed from "config written".
const (
	// ConditionAccepted is True when the resource is part of the written
	// gateway config.
	ConditionAccepted = "Accepted"
	// ConditionReady is True when the broker reports the backend ready, with
	// its tools discovered.
	ConditionReady = "Ready"
	// ConditionResolvedRefs is True when every tool an MCPVirtualServer
	// lists carries the prefix, or is an alias, of an accepted
	// registration.
	ConditionResolvedRefs = "ResolvedRefs"
)

// Reasons of the Accepted condition.
const (
	ReasonAccepted           = "Accepted"
	ReasonDisabled           = "Disabled"
	ReasonRouteNotFound      = "RouteNotFound"
	ReasonRouteNoHostname    = "RouteHasNoHostname"
	ReasonRouteNoBackend     = "RouteHasNoBackend"
	ReasonRouteAmbiguous     = "RouteBackendAmbiguous"
	ReasonUnsupportedBackend = "UnsupportedBackend"
	ReasonPrefixConflict     = "PrefixConflict"
	ReasonAliasConflict      = "AliasConflict"
	ReasonCredentialNotFound = "CredentialNotFound"
	ReasonInvalid            = "Invalid"
	// ReasonConfigNotWritten: the resource is valid but writing the config
	// failed, so the gateway does not have it (the message says why).
	ReasonConfigNotWritten = "ConfigNotWritten"
)

// Reasons of the Ready condition.
const (
	ReasonBackendReady       = "BackendReady"
	ReasonBackendConnecting  = "BackendConnecting"
	ReasonBackendInvalid     = "BackendInvalid"
	ReasonBackendUnreachable = "BackendUnreachable"
	// ReasonNotAccepted: not in the config, so the gateway cannot serve it.
	ReasonNotAccepted = "NotAccepted"
	// ReasonBrokerUnavailable: the broker's status endpoint could not be read.
	ReasonBrokerUnavailable = "BrokerUnavailable"
	// ReasonPending: the broker has not loaded this server (or this version
	// of it) yet; config propagation to the pods takes a while.
	ReasonPending = "Pending"
)

// Reasons of the ResolvedRefs condition.
const (
	ReasonResolved     = "Resolved"
	ReasonUnknownTools = "UnknownTools"
)
