package fqdn

import (
	"container/heap"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// Defaults of Options.
const (
	// DefaultMinTTL is Cilium's --tofqdns-min-ttl default: answers keep
	// their own TTL.
	DefaultMinTTL = 0
	// DefaultMaxPerEndpoint bounds one endpoint's (name, address) entries.
	DefaultMaxPerEndpoint = 5000
	// DefaultMaxEntries bounds all endpoints' entries together.
	DefaultMaxEntries = 100_000
	// DefaultGCInterval is how often expired entries are removed.
	DefaultGCInterval = time.Second
	// DefaultSaveInterval is how often a changed cache is written to its
	// state file.
	DefaultSaveInterval = 10 * time.Second
)

// Answer is one allowed DNS answer as the proxy saw it.
type Answer struct {
	// Endpoint is the local endpoint that asked (api.Endpoint.ID).
	Endpoint uint32
	// Name is the queried name, lower case and fully qualified.
	Name string
	// Addrs are the A and AAAA addresses of the answer.
	Addrs []netip.Addr
	// TTL is the answer's lowest TTL, in seconds.
	TTL uint32
}

// Admission is what the Admit hook gets: an answer about to be released
// to its endpoint, with the TTL the cache applies (at least MinTTL).
type Admission struct {
	Endpoint uint32
	Name     string
	Addrs    []netip.Addr
	TTL      time.Duration
}

// Expiry tells the Expire hook that an endpoint's name no longer resolves
// to Addrs.
type Expiry struct {
	Endpoint uint32
	Name     string
	Addrs    []netip.Addr
}

// Options configure a Cache; zero values take the defaults above.
type Options struct {
	// MinTTL raises every answer's TTL to at least this.
	MinTTL time.Duration
	// MaxPerEndpoint and MaxEntries bound the (name, address) entries.
	MaxPerEndpoint int
	MaxEntries     int
	// StatePath is the state file; empty keeps the cache in memory only.
	StatePath string
	// GCInterval and SaveInterval pace Run.
	GCInterval   time.Duration
	SaveInterval time.Duration
	// Admit, when set, is called with every recorded answer before Record
	// returns, so the caller can release the answer only after the policy
	// admitted its addresses. Its error is Record's. It runs concurrently
	// with other Records and their Admits, after its entries are cached.
	Admit func(Admission) error
	// Admitted, when set with Admit, tells without waiting whether the
	// policy in force admits an answer's addresses already (true: Admit
	// would return at once); TryRecord asks it.
	Admitted func(Admission) bool
	// Expire, when set, is called for addresses that left the cache, one
	// call at a time, in the order of the removals.
	Expire func(Expiry)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// Cache is the FQDN cache. Its methods are safe for concurrent use; the
// Expire hook is called one call at a time, in the order of the removals
// it reports; Admit after its answer's entries are cached (Record).
type Cache struct {
	opts Options
	log  *slog.Logger

	// hookMu orders changes and their Expire hooks: held from a change
	// until its hook returned.
	hookMu sync.Mutex

	mu        sync.RWMutex
	endpoints map[uint32]*endpointCache
	total     int
	dirty     bool
	nonEmpty  atomic.Bool // a lock-free "nothing cached" for Annotate
	evictions atomic.Uint64
}

// endpointCache is one endpoint's entries.
type endpointCache struct {
	id     uint32
	byPair map[pairKey]*entry
	// names are the names of an address, sorted, without the final dot:
	// each slice is replaced, never changed, so readers may keep it.
	names map[netip.Addr][]string
	byExp expiryHeap
}

type pairKey struct {
	name string
	addr netip.Addr
}

type entry struct {
	pairKey
	expires time.Time
	index   int // in byExp
}

// New returns a cache holding what StatePath kept (expired entries
// dropped). A missing state file is an empty cache; a damaged one is an
// error naming it.
func New(opts Options) (*Cache, error) {
	if opts.MinTTL < 0 {
		return nil, fmt.Errorf("fqdn cache: negative minimum TTL %v", opts.MinTTL)
	}
	if opts.MaxPerEndpoint == 0 {
		opts.MaxPerEndpoint = DefaultMaxPerEndpoint
	}
	if opts.MaxEntries == 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.MaxPerEndpoint < 0 || opts.MaxEntries < 0 {
		return nil, fmt.Errorf("fqdn cache: negative bounds %d per endpoint, %d in all", opts.MaxPerEndpoint, opts.MaxEntries)
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = DefaultGCInterval
	}
	if opts.SaveInterval <= 0 {
		opts.SaveInterval = DefaultSaveInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cache{opts: opts, log: log.With("component", "fqdn-cache"), endpoints: make(map[uint32]*endpointCache)}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

// Record caches an allowed answer (addresses of a name, for an endpoint)
// and calls the Admit hook with it before returning. An answer without
// addresses changes nothing. Entries already cached keep the later of the
// two expiries. When the hook fails the entries stay cached (their names
// still show in flows) and its error is returned: the caller must not
// release the answer.
//
// The hook runs once the entries are in the cache, outside its locks:
// Records of other answers (and their hooks) run meanwhile, so a policy
// that needs time to admit (a recompile) can admit many answers at once.
// A policy that reads the cache when it admits (Entries) sees the answer.
func (c *Cache) Record(a Answer) error {
	if len(a.Addrs) == 0 {
		return nil
	}
	ttl := c.cache(a)

	if c.opts.Admit == nil {
		return nil
	}
	if err := c.opts.Admit(Admission{Endpoint: a.Endpoint, Name: a.Name, Addrs: a.Addrs, TTL: ttl}); err != nil {
		return fmt.Errorf("admit %s for endpoint %d: %w", a.Name, a.Endpoint, err)
	}
	return nil
}

// cache caches a's entries and returns the TTL they got.
func (c *Cache) cache(a Answer) time.Duration {
	ttl := max(time.Duration(a.TTL)*time.Second, c.opts.MinTTL)
	c.hookMu.Lock()
	expires := c.opts.Now().Add(ttl)
	var evicted []Expiry
	c.mu.Lock()
	ec := c.endpoints[a.Endpoint]
	if ec == nil {
		ec = &endpointCache{id: a.Endpoint, byPair: make(map[pairKey]*entry), names: make(map[netip.Addr][]string)}
		c.endpoints[a.Endpoint] = ec
	}
	for _, addr := range a.Addrs {
		evicted = c.upsert(ec, pairKey{a.Name, addr.Unmap()}, expires, evicted)
	}
	c.dirty = true
	c.nonEmpty.Store(c.total > 0)
	c.mu.Unlock()
	c.expire(evicted)
	c.hookMu.Unlock()
	return ttl
}

// TryRecord is Record for a caller that must not wait for the policy:
// it caches a and reports true when nothing is to be admitted (no Admit
// hook) or the Admitted hook says the policy in force admits its
// addresses already; otherwise it reports false and the caller must call
// Record, which admits them (a's entries may be cached already, which
// Record repeats harmlessly). Without an Admitted hook it caches nothing
// and reports false, unless there is no Admit hook either.
func (c *Cache) TryRecord(a Answer) (bool, error) {
	if len(a.Addrs) == 0 {
		return true, nil
	}
	if c.opts.Admit == nil {
		return true, c.Record(a)
	}
	if c.opts.Admitted == nil {
		return false, nil
	}
	ttl := c.cache(a)
	// The entries are cached before the check: a recompile that begins
	// after it reads them (the Admitted hook's contract).
	return c.opts.Admitted(Admission{Endpoint: a.Endpoint, Name: a.Name, Addrs: a.Addrs, TTL: ttl}), nil
}

// upsert adds or extends one entry, evicting to stay in bounds; c.mu is
// held.
func (c *Cache) upsert(ec *endpointCache, k pairKey, expires time.Time, evicted []Expiry) []Expiry {
	if e := ec.byPair[k]; e != nil {
		if expires.After(e.expires) {
			e.expires = expires
			heap.Fix(&ec.byExp, e.index)
		}
		return evicted
	}
	if c.opts.MaxPerEndpoint == 0 || c.opts.MaxEntries == 0 {
		return evicted
	}
	for len(ec.byPair) >= c.opts.MaxPerEndpoint {
		evicted = c.evictOne(ec, evicted)
	}
	for c.total >= c.opts.MaxEntries {
		evicted = c.evictOne(c.largest(), evicted)
	}
	c.endpoints[ec.id] = ec // evicting its last entry may have dropped it
	e := &entry{pairKey: k, expires: expires}
	ec.byPair[k] = e
	heap.Push(&ec.byExp, e)
	ec.addName(k)
	c.total++
	return evicted
}

// largest is the endpoint holding the most entries; c.mu is held.
func (c *Cache) largest() *endpointCache {
	var big *endpointCache
	for _, ec := range c.endpoints {
		if big == nil || len(ec.byPair) > len(big.byPair) {
			big = ec
		}
	}
	return big
}

// evictOne removes ec's entry closest to expiry; c.mu is held.
func (c *Cache) evictOne(ec *endpointCache, evicted []Expiry) []Expiry {
	e := ec.byExp[0]
	c.remove(ec, e)
	c.evictions.Add(1)
	return appendExpiry(evicted, ec.id, e)
}

// remove deletes one entry; c.mu is held.
func (c *Cache) remove(ec *endpointCache, e *entry) {
	heap.Remove(&ec.byExp, e.index)
	delete(ec.byPair, e.pairKey)
	ec.removeName(e.pairKey)
	c.total--
	c.dirty = true
	if len(ec.byPair) == 0 {
		delete(c.endpoints, ec.id)
	}
}

// appendExpiry adds e to the expiries, merged with the previous one when
// it has the same endpoint and name.
func appendExpiry(out []Expiry, ep uint32, e *entry) []Expiry {
	if n := len(out); n > 0 && out[n-1].Endpoint == ep && out[n-1].Name == e.name {
		out[n-1].Addrs = append(out[n-1].Addrs, e.addr)
		return out
	}
	return append(out, Expiry{Endpoint: ep, Name: e.name, Addrs: []netip.Addr{e.addr}})
}

// expire calls the Expire hook; hookMu is held.
func (c *Cache) expire(expired []Expiry) {
	if c.opts.Expire == nil {
		return
	}
	for _, x := range expired {
		c.opts.Expire(x)
	}
}

// GC removes the entries expired by now and reports them to the Expire
// hook. It returns how many entries it removed.
func (c *Cache) GC() int {
	c.hookMu.Lock()
	defer c.hookMu.Unlock()
	now := c.opts.Now()
	var expired []Expiry
	n := 0
	c.mu.Lock()
	for _, ec := range c.endpoints {
		for len(ec.byExp) > 0 && !ec.byExp[0].expires.After(now) {
			e := ec.byExp[0]
			c.remove(ec, e)
			expired = appendExpiry(expired, ec.id, e)
			n++
		}
	}
	c.nonEmpty.Store(c.total > 0)
	c.mu.Unlock()
	c.expire(expired)
	return n
}

// Forget drops every entry of an endpoint that is gone, reporting them to
// the Expire hook.
func (c *Cache) Forget(endpoint uint32) {
	c.hookMu.Lock()
	defer c.hookMu.Unlock()
	var expired []Expiry
	c.mu.Lock()
	if ec := c.endpoints[endpoint]; ec != nil {
		for len(ec.byExp) > 0 {
			e := ec.byExp[0]
			c.remove(ec, e)
			expired = appendExpiry(expired, endpoint, e)
		}
	}
	c.nonEmpty.Store(c.total > 0)
	c.mu.Unlock()
	c.expire(expired)
}

// NamesOf returns the names endpoint resolved to addr, sorted, without the
// final dot (Hubble's DNSGetter.GetNamesOf). The slice is shared: never
// modify it. Entries past their expiry that GC has not removed yet still
// count. It does not allocate.
func (c *Cache) NamesOf(endpoint uint32, addr netip.Addr) []string {
	if endpoint == 0 || !addr.IsValid() || !c.nonEmpty.Load() {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if ec := c.endpoints[endpoint]; ec != nil {
		return ec.names[addr.Unmap()]
	}
	return nil
}

// Annotate sets a flow's SourceNames (the source address as the
// destination endpoint resolved it) and DestinationNames (the destination
// address as the source endpoint resolved it), as Hubble does. It does not
// allocate.
func (c *Cache) Annotate(f *api.Flow) {
	f.SourceNames = c.NamesOf(f.Destination.ID, f.IP.Source)
	f.DestinationNames = c.NamesOf(f.Source.ID, f.IP.Destination)
}

// AllNames returns every cached address with the names any endpoint's
// answers gave it, node-wide (what toFQDNs selects by): without the final
// dot, sorted, each once. Entries past their expiry that GC has not
// removed yet still count. The slices may be shared: never modify them.
func (c *Cache) AllNames() map[netip.Addr][]string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[netip.Addr][]string)
	for _, ec := range c.endpoints {
		for a, names := range ec.names {
			prev, ok := out[a]
			if !ok {
				out[a] = names
				continue
			}
			merged := slices.Concat(prev, names)
			slices.Sort(merged)
			out[a] = slices.Compact(merged)
		}
	}
	return out
}

// AddrNames returns, for each of addrs the cache holds, its names as
// AllNames gives them (node-wide, sorted, each once), without building the
// whole map: what admitting one answer reads. The slices may be shared:
// never modify them.
func (c *Cache) AddrNames(addrs []netip.Addr) map[netip.Addr][]string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[netip.Addr][]string, len(addrs))
	for _, a := range addrs {
		a = a.Unmap()
		for _, ec := range c.endpoints {
			names, ok := ec.names[a]
			if !ok {
				continue
			}
			prev, ok := out[a]
			if !ok {
				out[a] = names
				continue
			}
			merged := slices.Concat(prev, names)
			slices.Sort(merged)
			out[a] = slices.Compact(merged)
		}
	}
	return out
}

// Lookup returns the unexpired addresses endpoint resolved name (in any
// case, with or without the final dot) to, sorted.
func (c *Cache) Lookup(endpoint uint32, name string) []netip.Addr {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	now := c.opts.Now()
	c.mu.RLock()
	defer c.mu.RUnlock()
	ec := c.endpoints[endpoint]
	if ec == nil {
		return nil
	}
	var out []netip.Addr
	for k, e := range ec.byPair {
		if k.name == name && e.expires.After(now) {
			out = append(out, k.addr)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Entry is one cached (endpoint, name, address) with its expiry.
type Entry struct {
	Endpoint uint32
	Name     string
	Addr     netip.Addr
	Expires  time.Time
}

// Entries lists every entry, by endpoint, name and address: what a policy
// restarted next to a restored cache admits again.
func (c *Cache) Entries() []Entry {
	c.mu.RLock()
	out := make([]Entry, 0, c.total)
	for id, ec := range c.endpoints {
		for k, e := range ec.byPair {
			out = append(out, Entry{Endpoint: id, Name: k.name, Addr: k.addr, Expires: e.expires})
		}
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b Entry) int {
		if a.Endpoint != b.Endpoint {
			return int(int64(a.Endpoint) - int64(b.Endpoint))
		}
		if a.Name != b.Name {
			return strings.Compare(a.Name, b.Name)
		}
		return a.Addr.Compare(b.Addr)
	})
	return out
}

// Stats are the cache's counters.
type Stats struct {
	Endpoints int
	Entries   int
	Evictions uint64 // entries removed to stay in bounds
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return Stats{Endpoints: len(c.endpoints), Entries: c.total, Evictions: c.evictions.Load()}
}

// addName puts k.name into the address's name list (copy on write).
func (ec *endpointCache) addName(k pairKey) {
	shown := strings.TrimSuffix(k.name, ".")
	old := ec.names[k.addr]
	i, found := slices.BinarySearch(old, shown)
	if found {
		return
	}
	ec.names[k.addr] = slices.Insert(slices.Clone(old), i, shown)
}

// removeName takes k.name out of the address's name list (copy on write).
func (ec *endpointCache) removeName(k pairKey) {
	shown := strings.TrimSuffix(k.name, ".")
	old := ec.names[k.addr]
	i, found := slices.BinarySearch(old, shown)
	if !found {
		return
	}
	if len(old) == 1 {
		delete(ec.names, k.addr)
		return
	}
	ec.names[k.addr] = slices.Delete(slices.Clone(old), i, i+1)
}

// expiryHeap orders an endpoint's entries by expiry.
type expiryHeap []*entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
