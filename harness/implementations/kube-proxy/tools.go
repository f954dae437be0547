//go:build tools

// Package tools pins the real kube-proxy and kubectl: scripts/build-implementations
// builds k8s.io/kubernetes/cmd/{kube-proxy,kubectl} from this module, at the version
// go.mod requires.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
