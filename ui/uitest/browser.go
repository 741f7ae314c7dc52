// Package uitest starts the browser the web UI's tests drive: Debian's
// headless Chromium, kept off the network. It must not be imported by
// anything the binary links (it imports testing).
package uitest

import (
	"context"
	"os"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// ChromiumPath is where Debian's chromium package puts the browser.
const ChromiumPath = "/usr/bin/chromium"

// RequireChromium skips the test without Chromium, or fails it in CI; a
// test with a long setup calls it first.
func RequireChromium(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		labtest.SkipOrFail(tb, "no Chromium at "+ChromiumPath+" (apt-get install chromium)")
	}
}

// Browser starts headless Chromium (RequireChromium first) with the flags
// that keep it off the (closed) network, until the test ends, and returns
// a tab's context.
func Browser(tb testing.TB) context.Context {
	tb.Helper()
	RequireChromium(tb)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1440, 900),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tb.Cleanup(func() {
		cancel()
		acancel()
	})
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("start Chromium: %v", err)
	}
	return ctx
}
