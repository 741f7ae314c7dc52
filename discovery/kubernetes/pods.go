package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/periscope-dev/periscope/discovery"
	"github.com/periscope-dev/periscope/discovery/hostveth"
)

// Source is the Endpoint.Source of pods.
const Source = "k8s"

// Pods watches the pods scheduled on this node and all namespaces, and
// reports each pod that has addresses as an endpoint.
type Pods struct {
	client kubernetes.Interface
	opts   Options
	log    *slog.Logger

	// mu guards emitted and queue for Pending; the worker owns their
	// contents.
	mu      sync.Mutex
	emitted map[string]discovery.Endpoint
	queue   workqueue.TypedRateLimitingInterface[string]
}

// NewPods makes a pod watcher; Run starts it.
func NewPods(client kubernetes.Interface, opts Options) (*Pods, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Pods{
		client:  client,
		opts:    opts,
		log:     opts.Logger.With("component", "discovery-k8s-pods", "node", opts.NodeName),
		emitted: map[string]discovery.Endpoint{},
	}, nil
}

// errNoInterface marks a pod whose veth was not found (yet).
var errNoInterface = errors.New("host veth not found")

// Run watches until ctx ends and reports every change of the node's pods
// to sink, from one goroutine, in order. It returns once the informers
// and the worker have stopped; an error only when the caches never filled.
// When Run returns the endpoints it reported are not reported deleted: the
// caller knows they are no longer watched.
func (p *Pods) Run(ctx context.Context, sink discovery.EndpointSink) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rl := workqueue.NewTypedItemExponentialFailureRateLimiter[string](10*time.Millisecond, 2*time.Second)
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(rl, workqueue.TypedRateLimitingQueueConfig[string]{Name: "periscope-pods"})
	p.mu.Lock()
	p.queue = queue
	p.mu.Unlock()
	defer queue.ShutDown()

	onNode := informers.NewSharedInformerFactoryWithOptions(p.client, p.opts.Resync,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", p.opts.NodeName).String()
		}))
	all := informers.NewSharedInformerFactory(p.client, p.opts.Resync)
	podInformer := onNode.Core().V1().Pods()
	nsInformer := all.Core().V1().Namespaces()

	enqueue := func(obj any) {
		key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		if err != nil {
			p.log.Warn("pod without a key", "err", err)
			return
		}
		queue.Add(key)
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	// A namespace's labels are part of its pods' labels.
	podIndex := podInformer.Informer().GetIndexer()
	requeueNamespace := func(obj any) {
		ns, ok := obj.(*corev1.Namespace)
		if !ok {
			return
		}
		pods, err := podIndex.ByIndex(cache.NamespaceIndex, ns.Name)
		if err != nil {
			p.log.Warn("pods of namespace", "namespace", ns.Name, "err", err)
			return
		}
		for _, obj := range pods {
			enqueue(obj)
		}
	}
	if _, err := nsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: requeueNamespace,
		UpdateFunc: func(old, obj any) {
			o, n := old.(*corev1.Namespace), obj.(*corev1.Namespace)
			if !maps.Equal(o.Labels, n.Labels) {
				requeueNamespace(obj)
			}
		},
	}); err != nil {
		return fmt.Errorf("watch namespaces: %w", err)
	}

	onNode.Start(ctx.Done())
	all.Start(ctx.Done())
	defer onNode.Shutdown()
	defer all.Shutdown()
	for _, synced := range []cache.InformerSynced{podInformer.Informer().HasSynced, nsInformer.Informer().HasSynced} {
		if !cache.WaitForCacheSync(ctx.Done(), synced) {
			if ctx.Err() != nil {
				return nil
			}
			return errors.New("watch pods: caches did not sync")
		}
	}
	p.log.Info("watching pods", "cluster", p.opts.ClusterName)

	var wg sync.WaitGroup
	wg.Go(func() {
		w := podWorker{p: p, pods: podInformer.Lister(), namespaces: nsInformer.Lister(), sink: sink, queue: queue}
		for w.next() {
		}
	})
	<-ctx.Done()
	queue.ShutDown()
	wg.Wait()
	return nil
}

// Len returns how many pods are reported as endpoints now, and how many
// keys wait in the work queue (including retries): a test's leak check.
func (p *Pods) Len() (endpoints, pending int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.queue != nil {
		pending = p.queue.Len()
	}
	return len(p.emitted), pending
}

// podWorker turns queued pod keys into endpoint events.
type podWorker struct {
	p          *Pods
	pods       listerscorev1.PodLister
	namespaces listerscorev1.NamespaceLister
	sink       discovery.EndpointSink
	queue      workqueue.TypedRateLimitingInterface[string]
}

// next handles one key; false once the queue is shut down.
func (w *podWorker) next() bool {
	key, quit := w.queue.Get()
	if quit {
		return false
	}
	defer w.queue.Done(key)
	err := w.sync(key)
	switch {
	case err == nil:
		w.queue.Forget(key)
	case errors.Is(err, errNoInterface) && w.queue.NumRequeues(key) < w.p.opts.InterfaceRetries:
		w.queue.AddRateLimited(key)
	default:
		w.p.log.Warn("pod", "pod", key, "err", err)
		w.queue.Forget(key)
	}
	return true
}

// sync reports the pod's current state, if it changed.
func (w *podWorker) sync(key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return fmt.Errorf("pod key %q: %w", key, err)
	}
	pod, err := w.pods.Pods(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		w.remove(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get pod %s: %w", key, err)
	}
	ep, ok := w.endpoint(key, pod)
	if !ok {
		w.remove(key)
		return nil
	}
	var findErr error
	if !ep.HostNetwork {
		ep.Interface, findErr = w.findInterface(key, ep.IPs)
	}
	w.emit(key, ep)
	if findErr != nil {
		return fmt.Errorf("%w: %v", errNoInterface, findErr)
	}
	return nil
}

// endpoint builds the endpoint of a pod that has addresses and has not
// ended; false otherwise.
func (w *podWorker) endpoint(key string, pod *corev1.Pod) (discovery.Endpoint, bool) {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return discovery.Endpoint{}, false
	}
	ips := podIPs(pod)
	if len(ips) == 0 {
		return discovery.Endpoint{}, false
	}
	ns, err := w.namespaces.Get(pod.Namespace)
	if err != nil {
		// Its arrival requeues the pod.
		ns = nil
	}
	return discovery.Endpoint{
		Source:      Source,
		ID:          key,
		Name:        pod.Name,
		Namespace:   pod.Namespace,
		Labels:      podLabels(pod, ns, w.p.opts.ClusterName),
		IPs:         ips,
		HostNetwork: pod.Spec.HostNetwork,
	}, true
}

// findInterface keeps the veth reported before while the addresses are the
// same and it exists; otherwise it looks for one.
func (w *podWorker) findInterface(key string, ips []netip.Addr) (discovery.Interface, error) {
	w.p.mu.Lock()
	prev, ok := w.p.emitted[key]
	w.p.mu.Unlock()
	if ok && prev.Interface != (discovery.Interface{}) && slices.Equal(prev.IPs, ips) && hostveth.Exists(prev.Interface) {
		return prev.Interface, nil
	}
	return w.p.opts.FindInterface(ips)
}

func (w *podWorker) emit(key string, ep discovery.Endpoint) {
	w.p.mu.Lock()
	prev, ok := w.p.emitted[key]
	if ok && prev.Equal(ep) {
		w.p.mu.Unlock()
		return
	}
	w.p.emitted[key] = ep
	w.p.mu.Unlock()
	kind := discovery.Added
	if ok {
		kind = discovery.Updated
	}
	w.p.log.Debug("endpoint "+kind.String(), "pod", key, "ips", ep.IPs, "interface", ep.Interface.Name)
	w.sink.EndpointChanged(discovery.EndpointEvent{Kind: kind, Endpoint: ep})
}

func (w *podWorker) remove(key string) {
	w.p.mu.Lock()
	prev, ok := w.p.emitted[key]
	delete(w.p.emitted, key)
	w.p.mu.Unlock()
	if !ok {
		return
	}
	w.p.log.Debug("endpoint deleted", "pod", key)
	w.sink.EndpointChanged(discovery.EndpointEvent{Kind: discovery.Deleted, Endpoint: prev})
}

// podIPs returns the pod's addresses (status.podIPs, or status.podIP of
// an older kubelet), sorted.
func podIPs(pod *corev1.Pod) []netip.Addr {
	var out []netip.Addr
	add := func(s string) {
		if ip, err := netip.ParseAddr(s); err == nil && !slices.Contains(out, ip.Unmap()) {
			out = append(out, ip.Unmap())
		}
	}
	for _, ip := range pod.Status.PodIPs {
		add(ip.IP)
	}
	if len(out) == 0 && pod.Status.PodIP != "" {
		add(pod.Status.PodIP)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
