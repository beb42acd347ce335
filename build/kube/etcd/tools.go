//go:build tools

// Package tools pins etcd's main package in this module's go.sum.
package tools

import _ "go.etcd.io/etcd/server/v3"
