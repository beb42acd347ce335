// Package crd embeds mcpgw's generated CustomResourceDefinitions, so tests
// install exactly what the deployment ships. The files are generated from
// controller/api/v1alpha1 (see its generate.go), which also copies them to
// build/deploy/crd: kustomize refuses files outside its own root, and a
// test checks the two copies stay identical.
package crd

import "embed"

// FS holds one CRD YAML file per kind.
//
//go:embed *.yaml
var FS embed.FS
