package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/periscope-dev/periscope/discovery"
)

// PolicyKind is a kind of policy object the watcher follows.
type PolicyKind struct {
	// Kind is the object's kind, e.g. "CiliumNetworkPolicy".
	Kind string
	// Resource is its API resource.
	Resource schema.GroupVersionResource
	// Namespaced is false for cluster-wide kinds.
	Namespaced bool
}

// PolicyKinds are the kinds of policy object Periscope enforces.
var PolicyKinds = []PolicyKind{
	{"CiliumNetworkPolicy", schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumnetworkpolicies"}, true},
	{"CiliumClusterwideNetworkPolicy", schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumclusterwidenetworkpolicies"}, false},
	{"NetworkPolicy", schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"}, true},
}

// RefusedReason is the reason of the Event that reports a refused policy.
const RefusedReason = "PolicyRefused"

// Policies watches the policy objects of the cluster and reports them to a
// PolicySink; an object the sink refuses gets a Warning Event.
type Policies struct {
	dyn    dynamic.Interface
	client kubernetes.Interface
	opts   Options
	log    *slog.Logger

	mu      sync.Mutex
	emitted map[policyKey]discovery.PolicyEvent
}

// policyKey names one object of one kind.
type policyKey struct {
	kind            int // index in PolicyKinds
	namespace, name string
}

// NewPolicies makes a policy watcher: dyn reads the objects, client
// writes the Events. Run starts it.
func NewPolicies(dyn dynamic.Interface, client kubernetes.Interface, opts Options) (*Policies, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Policies{
		dyn:     dyn,
		client:  client,
		opts:    opts,
		log:     opts.Logger.With("component", "discovery-k8s-policies", "node", opts.NodeName),
		emitted: map[policyKey]discovery.PolicyEvent{},
	}, nil
}

// Run watches the kinds the API server serves (a cluster without Cilium's
// CRDs has only NetworkPolicy) until ctx ends, reporting every change to
// sink from one goroutine.
func (p *Policies) Run(ctx context.Context, sink discovery.PolicySink) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[policyKey]{Name: "periscope-policies"})
	defer queue.ShutDown()

	served, err := p.servedKinds()
	if err != nil {
		return err
	}
	factory := dynamicinformer.NewDynamicSharedInformerFactory(p.dyn, p.opts.Resync)
	defer factory.Shutdown()
	listers := map[int]cache.GenericLister{}
	var synced []cache.InformerSynced
	for _, i := range served {
		inf := factory.ForResource(PolicyKinds[i].Resource)
		enqueue := func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			u, ok := obj.(*unstructured.Unstructured)
			if !ok {
				return
			}
			queue.Add(policyKey{kind: i, namespace: u.GetNamespace(), name: u.GetName()})
		}
		if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    enqueue,
			UpdateFunc: func(_, obj any) { enqueue(obj) },
			DeleteFunc: enqueue,
		}); err != nil {
			return fmt.Errorf("watch %s: %w", PolicyKinds[i].Resource.Resource, err)
		}
		listers[i] = inf.Lister()
		synced = append(synced, inf.Informer().HasSynced)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("watch policies: caches did not sync")
	}

	var wg sync.WaitGroup
	wg.Go(func() {
		p.synced(served, listers, sink)
		for {
			key, quit := queue.Get()
			if quit {
				return
			}
			p.sync(ctx, key, listers[key.kind], sink)
			queue.Done(key)
		}
	})
	<-ctx.Done()
	queue.ShutDown()
	wg.Wait()
	return nil
}

// synced tells sink which objects the API server has, once the caches
// hold its first complete listing: what the sink kept of objects deleted
// while it was not watching goes (a kind not served has none).
func (p *Policies) synced(served []int, listers map[int]cache.GenericLister, sink discovery.PolicySink) {
	ev := discovery.PolicyEvent{Kind: discovery.Synced, Present: []discovery.PolicyObject{}}
	for _, i := range served {
		objs, err := listers[i].List(labels.Everything())
		if err != nil { // the cache's List does not fail; keep everything if it did
			p.log.Warn("list policies after sync: stored policies not reconciled", "kind", PolicyKinds[i].Kind, "err", err)
			return
		}
		for _, obj := range objs {
			if u, ok := obj.(*unstructured.Unstructured); ok {
				ev.Present = append(ev.Present, discovery.PolicyObject{Kind: PolicyKinds[i].Kind, Namespace: u.GetNamespace(), Name: u.GetName()})
			}
		}
	}
	p.log.Info("policies synced", "objects", len(ev.Present))
	if err := sink.PolicyChanged(ev); err != nil {
		p.log.Warn("remove the policies deleted while not watching", "err", err)
	}
}

// servedKinds returns the indexes in PolicyKinds of the kinds the API
// server serves.
func (p *Policies) servedKinds() ([]int, error) {
	var out []int
	for i, k := range PolicyKinds {
		gv := k.Resource.GroupVersion().String()
		list, err := p.client.Discovery().ServerResourcesForGroupVersion(gv)
		if apierrors.IsNotFound(err) {
			p.log.Warn("policy kind not served: not watched (its CRD is not installed?)", "kind", k.Kind)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("watch policies: resources of %s: %w", gv, err)
		}
		for _, r := range list.APIResources {
			if r.Name == k.Resource.Resource {
				out = append(out, i)
				break
			}
		}
	}
	p.log.Info("watching policies", "kinds", len(out))
	return out, nil
}

// Len returns how many policy objects are reported now.
func (p *Policies) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.emitted)
}

// sync reports the object's state when what a policy store reads of it
// changed (not its status or resourceVersion).
func (p *Policies) sync(ctx context.Context, key policyKey, lister cache.GenericLister, sink discovery.PolicySink) {
	kind := PolicyKinds[key.kind]
	var obj any
	var err error
	if kind.Namespaced {
		obj, err = lister.ByNamespace(key.namespace).Get(key.name)
	} else {
		obj, err = lister.Get(key.name)
	}
	p.mu.Lock()
	prev, known := p.emitted[key]
	p.mu.Unlock()
	if apierrors.IsNotFound(err) {
		if !known {
			return
		}
		p.mu.Lock()
		delete(p.emitted, key)
		p.mu.Unlock()
		prev.Kind = discovery.Deleted
		if err := sink.PolicyChanged(prev); err != nil {
			p.log.Warn("policy deletion refused", "kind", kind.Kind, "namespace", key.namespace, "name", key.name, "err", err)
		}
		return
	}
	if err != nil {
		p.log.Warn("get policy", "kind", kind.Kind, "namespace", key.namespace, "name", key.name, "err", err)
		return
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	source, err := policySource(u)
	if err != nil {
		p.log.Warn("encode policy", "kind", kind.Kind, "namespace", key.namespace, "name", key.name, "err", err)
		return
	}
	if known && bytes.Equal(prev.Source, source) {
		return
	}
	ev := discovery.PolicyEvent{Kind: discovery.Added, ObjectKind: kind.Kind, Namespace: key.namespace, Name: key.name, Source: source}
	if known {
		ev.Kind = discovery.Updated
	}
	p.mu.Lock()
	p.emitted[key] = ev
	p.mu.Unlock()
	if err := sink.PolicyChanged(ev); err != nil {
		p.log.Warn("policy refused", "kind", kind.Kind, "namespace", key.namespace, "name", key.name, "err", err)
		p.reportRefused(ctx, u, err)
	}
}

// policySource is the object as JSON without what the server maintains
// (status, resourceVersion, managedFields, ...): what `periscope policy
// apply` would read from the user's file.
func policySource(u *unstructured.Unstructured) ([]byte, error) {
	c := u.DeepCopy()
	delete(c.Object, "status")
	meta := map[string]any{"name": c.GetName()}
	if ns := c.GetNamespace(); ns != "" {
		meta["namespace"] = ns
	}
	if l := c.GetLabels(); len(l) > 0 {
		meta["labels"] = l
	}
	if a := c.GetAnnotations(); len(a) > 0 {
		delete(a, corev1.LastAppliedConfigAnnotation)
		if len(a) > 0 {
			meta["annotations"] = a
		}
	}
	c.Object["metadata"] = meta
	return json.Marshal(c.Object)
}

// reportRefused records a Warning Event on the object: `kubectl describe`
// shows it. Cluster-wide objects' Events go to the default namespace, as
// kubectl expects.
func (p *Policies) reportRefused(ctx context.Context, u *unstructured.Unstructured, refusal error) {
	ns := u.GetNamespace()
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	msg := refusal.Error()
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: u.GetName() + ".", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{
			APIVersion:      u.GetAPIVersion(),
			Kind:            u.GetKind(),
			Namespace:       u.GetNamespace(),
			Name:            u.GetName(),
			UID:             u.GetUID(),
			ResourceVersion: u.GetResourceVersion(),
		},
		Reason:         RefusedReason,
		Message:        msg,
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "periscope", Host: p.opts.NodeName},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
	}
	if _, err := p.client.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		p.log.Warn("report refused policy", "kind", u.GetKind(), "name", u.GetName(), "err", err)
	}
}
