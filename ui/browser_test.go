package ui

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/periscope-dev/periscope/ui/uitest"
)

// pageLoad bounds a navigation and the first rows it shows: chromium's
// first paint of a page takes seconds when the machine is busy (2 shared
// cores running the rest of the suite).
const pageLoad = 60 * time.Second

// run runs actions with a deadline.
func run(t testing.TB, ctx context.Context, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// evalJS evaluates a JavaScript expression.
func evalJS[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// eval evaluates a JavaScript expression into out.
func eval[T any](t testing.TB, ctx context.Context, expr string, out *T) {
	t.Helper()
	*out = evalJS[T](t, ctx, expr)
}

// waitJS polls a JavaScript condition.
func waitJS(t testing.TB, ctx context.Context, cond string, timeout time.Duration) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, timeout+time.Second)
	defer cancel()
	_, err := chromedp.Run(tctx, chromedp.Poll[bool](cond,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](
			`document.getElementById('error').textContent + ' | ' + document.getElementById('conn-text').textContent`))
		t.Fatalf("waiting for %s: %v (page: %s)", cond, err, state)
	}
}

func screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(artifactDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func count(t testing.TB, ctx context.Context, id string) int {
	t.Helper()
	var n int
	eval(t, ctx, `Number(document.querySelector('[data-testid="`+id+`"]').textContent)`, &n)
	return n
}

func TestBrowserLiveTableFiltersPauseDetailsAndMap(t *testing.T) {
	ctx := uitest.Browser(t)
	l := startLab(t, 200, Options{Token: "t0ken"})

	run(t, ctx, pageLoad,
		chromedp.Navigate(l.base+"/?token=t0ken"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flow-row"]`)),
	)
	t.Run("rows appear with verdict colours", func(t *testing.T) {
		waitJS(t, ctx, `document.querySelectorAll('[data-testid="flow-row"][data-verdict="DROPPED"]').length > 0`, 10*time.Second)
		var colour string
		eval(t, ctx, `getComputedStyle(document.querySelector('[data-testid="flow-row"][data-verdict="DROPPED"] .verdict')).color`, &colour)
		if colour != "rgb(217, 56, 56)" {
			t.Errorf("DROPPED verdict colour %s, want red", colour)
		}
		eval(t, ctx, `getComputedStyle(document.querySelector('[data-testid="flow-row"][data-verdict="FORWARDED"] .verdict')).color`, &colour)
		if colour != "rgb(31, 157, 85)" {
			t.Errorf("FORWARDED verdict colour %s, want green", colour)
		}
	})
	t.Run("the service map draws edges coloured by verdict", func(t *testing.T) {
		waitJS(t, ctx, `document.querySelectorAll('[data-testid="map-edge"]').length >= 5`, 10*time.Second)
		var edges map[string]string
		eval(t, ctx, `Object.fromEntries([...document.querySelectorAll('[data-testid="map-edge"]')].map(
			e => [e.dataset.from + ' -> ' + e.dataset.to, e.dataset.verdict + ' ' + getComputedStyle(e).stroke]))`, &edges)
		want := map[string]string{
			"default/frontend -> default/backend": "FORWARDED rgb(31, 157, 85)",
			"untrusted/outsider -> data/db":       "DROPPED rgb(217, 56, 56)",
			"default/backend -> data/payments":    "AUDIT rgb(217, 138, 0)",
		}
		for k, v := range want {
			if edges[k] != v {
				t.Errorf("edge %s: %q, want %q (all: %v)", k, edges[k], v, edges)
			}
		}
		screenshot(t, ctx, "live.png")
	})
	t.Run("a chip narrows the rows and goes into the URL", func(t *testing.T) {
		run(t, ctx, 10*time.Second,
			chromedp.SendKeys(chromedp.CSS(`[data-testid="filter-input"]`), "from:label=app=outsider"+kb.Enter),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="filter-chip"][data-chip="from:label=app=outsider"]`)),
		)
		waitJS(t, ctx, `(() => {
			const rows = [...document.querySelectorAll('[data-testid="flow-row"]:not([hidden])')];
			return rows.length > 0 && rows.every(r => r.dataset.src.startsWith('untrusted/outsider'));
		})()`, 10*time.Second)
		var loc string
		eval(t, ctx, `location.href`, &loc)
		u, err := url.Parse(loc)
		if err != nil || u.Query()["filter"] == nil || u.Query()["filter"][0] != "from:label=app=outsider" {
			t.Errorf("URL %s does not carry the filter", loc)
		}
		screenshot(t, ctx, "filtered.png")
	})
	t.Run("pause holds the rows while the count grows", func(t *testing.T) { checkPauseHolds(t, ctx) })
	t.Run("a click shows the details", func(t *testing.T) {
		run(t, ctx, 10*time.Second,
			chromedp.Click(chromedp.CSS(`[data-testid="flow-row"][data-index="0"]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="detail-pane"]`)),
		)
		var text string
		eval(t, ctx, `document.querySelector('[data-testid="detail-pane"]').innerText`, &text)
		for _, want := range []string{"DROPPED (POLICY_DENIED)", "untrusted/outsider-x1", "data/db-ingress (CiliumNetworkPolicy, revision 3)", `"drop_reason_desc": "POLICY_DENIED"`} {
			if !strings.Contains(text, want) {
				t.Errorf("detail pane lacks %q:\n%s", want, text)
			}
		}
		screenshot(t, ctx, "detail.png")
	})
}

func TestBrowserRestoresChipsFromTheURLAndQueriesHistory(t *testing.T) {
	ctx := uitest.Browser(t)
	l := startLab(t, 500, Options{})
	time.Sleep(500 * time.Millisecond)
	run(t, ctx, pageLoad,
		chromedp.Navigate(l.base+"/?filter=verdict%3DDROPPED&filter=to%3Aport%3D5432"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flow-row"]`)),
	)
	var chips []string
	eval(t, ctx, `[...document.querySelectorAll('[data-testid="filter-chip"]')].map(c => c.dataset.chip)`, &chips)
	if strings.Join(chips, " ") != "verdict=DROPPED to:port=5432" {
		t.Errorf("chips %q, want those of the URL", chips)
	}
	waitJS(t, ctx, `[...document.querySelectorAll('[data-testid="flow-row"]:not([hidden])')].every(r => r.dataset.verdict === 'DROPPED')`, 5*time.Second)

	// History: the last 15 minutes through GET /api/v1/flows.
	run(t, ctx, 10*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="mode-history"]`)))
	waitJS(t, ctx, `document.querySelector('[data-testid="mode-label"]').textContent === 'history' &&
		Number(document.querySelector('[data-testid="count-shown"]').textContent) > 0`, 10*time.Second)
	// The history answer may still be rendering in batches: wait until the
	// count settles (live flows leaking in would keep it moving, and fail).
	shown := count(t, ctx, "count-shown")
	for settle := time.Now().Add(5 * time.Second); ; {
		time.Sleep(250 * time.Millisecond)
		n := count(t, ctx, "count-shown")
		if n == shown {
			break
		}
		if time.Now().After(settle) {
			t.Fatalf("history table never settled (%d, then %d rows): live flows leak in", shown, n)
		}
		shown = n
	}
	time.Sleep(500 * time.Millisecond)
	if n := count(t, ctx, "count-shown"); n != shown {
		t.Errorf("history table changed from %d to %d rows: live flows leak in", shown, n)
	}
	waitJS(t, ctx, `[...document.querySelectorAll('[data-testid="flow-row"]:not([hidden])')].every(r => r.dataset.verdict === 'DROPPED')`, 5*time.Second)
	screenshot(t, ctx, "history.png")
}

func itoa(n int) string { return strconv.Itoa(n) }

// checkPauseHolds pauses the table and checks that, while flows keep
// arriving (the received count grows), the rows shown stay as they were,
// then resumes and checks new rows come in.
func checkPauseHolds(t *testing.T, ctx context.Context) {
	t.Helper()
	const topTime = `document.querySelector('[data-testid="flow-row"][data-index="0"] .c-time').textContent`
	run(t, ctx, 5*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="pause-button"]`)))
	shown, received := count(t, ctx, "count-shown"), count(t, ctx, "count-received")
	var first string
	eval(t, ctx, topTime, &first)
	waitJS(t, ctx, `Number(document.querySelector('[data-testid="count-received"]').textContent) > `+itoa(received),
		10*time.Second)
	if n := count(t, ctx, "count-shown"); n != shown {
		t.Errorf("shown went from %d to %d while paused", shown, n)
	}
	var firstNow string
	eval(t, ctx, topTime, &firstNow)
	if firstNow != first {
		t.Errorf("top row changed while paused: %s → %s", first, firstNow)
	}
	run(t, ctx, 5*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="pause-button"]`)))
	waitJS(t, ctx, `Number(document.querySelector('[data-testid="count-shown"]').textContent) > `+itoa(shown), 10*time.Second)
}
