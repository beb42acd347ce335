package v1alpha1

// Regenerate deepcopy and the CRD YAML with the generator pinned in
// build/tools/go.mod, then copy the CRDs where kustomize can load them.
//go:generate sh -c "cd ../../.. && go tool -modfile=build/tools/go.mod controller-gen object paths=./controller/api/... crd output:crd:artifacts:config=controller/crd && mkdir -p build/deploy/crd && cp controller/crd/*.yaml build/deploy/crd/"
