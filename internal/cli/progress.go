package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/clean-registry/clean-registry/v2/internal/clean"
	"github.com/clean-registry/clean-registry/v2/internal/progress"
	"github.com/clean-registry/clean-registry/v2/internal/report"
)

// The --progress modes.
const (
	progressAuto   = "auto"   // on when stderr is a terminal and not -q
	progressAlways = "always" // on unless -q, whatever stderr is
	progressNever  = "never"
)

// progressRefresh is how often the progress bar is redrawn: 8 times a second.
const progressRefresh = 125 * time.Millisecond

// checkProgressMode checks a --progress value.
func checkProgressMode(mode string) error {
	switch mode {
	case progressAuto, progressAlways, progressNever:
		return nil
	}
	return fmt.Errorf("--progress must be auto, always or never, not %q", mode)
}

// progressOn decides whether a progress bar is drawn on w: never with -q (no output
// but errors) or --progress=never; with auto, only when w is a terminal. --json does
// not turn it off: the document goes to stdout, the bar to stderr.
func progressOn(mode string, quiet bool, w io.Writer) bool {
	switch {
	case quiet || mode == progressNever:
		return false
	case mode == progressAlways:
		return true
	}
	return isTerminal(w)
}

// isTerminal tells whether w is a terminal, where a progress bar may redraw itself.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// withProgress adds a progress tracker to a run's options when the command line and
// stderr call for one, its log going through the bar; stop ends the bar.
func (o options) withProgress(opts clean.Options, stderr io.Writer) (_ clean.Options, stop func()) {
	if !progressOn(o.progress, o.quiet, stderr) {
		return opts, func() {}
	}
	opts.Progress = progress.New()
	opts.Log, stop = startProgress(opts.Progress, stderr, opts.Log)
	return opts, stop
}

// progressView draws a tracker's stages on a terminal, one bar per stage: the stage
// under way redraws itself in place; an ended one is left as a line.
type progressView struct {
	mu   sync.Mutex // one writer at a time on the terminal: the ticker, the log, the bar's own
	w    io.Writer
	tr   *progress.Tracker
	next int                      // the first stage not yet left as a line
	bar  *progressbar.ProgressBar // the bar of stage next, once drawn
	max  int64                    // the bar's total, -1: not known (a spinner)
	desc string                   // the bar's description
}

// startProgress draws tr's stages on w until stop is called, which draws the last
// state and ends the line. The engine's counters are read at each refresh, nothing
// more. log, when not nil, is where the run writes its own lines (stdout, possibly the
// same terminal): the writer returned for it clears the bar's line first.
func startProgress(tr *progress.Tracker, w io.Writer, log io.Writer) (logw io.Writer, stop func()) {
	v := &progressView{w: w, tr: tr}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(progressRefresh)
		defer tick.Stop()
		for {
			select {
			case <-done:
				v.mu.Lock()
				v.update(true)
				v.mu.Unlock()
				return
			case <-tick.C:
				v.mu.Lock()
				v.update(false)
				v.mu.Unlock()
			}
		}
	})
	if log != nil {
		log = &progressLog{v: v, w: log}
	}
	return log, func() {
		close(done)
		wg.Wait()
	}
}

// update draws the stages: those that ended (or all, when final) as lines, the
// current one in place. v.mu is held.
func (v *progressView) update(final bool) {
	stages := v.tr.Stages()
	for v.next < len(stages) {
		snap := stages[v.next].Snapshot()
		v.draw(snap)
		if !snap.Ended && v.next == len(stages)-1 && !final {
			return
		}
		_ = v.bar.Exit()
		fmt.Fprintln(v.w)
		v.bar = nil
		v.next++
	}
}

// draw shows snap on the bar of the current stage.
func (v *progressView) draw(snap progress.Snapshot) {
	// The rate is the stage's own, since it began (the bar's would count the first
	// refresh's jump over no time at all), once it means something; a wait's
	// seconds have no rate.
	var details []string
	if snap.Elapsed >= time.Second/2 && snap.Unit != progress.Seconds {
		details = append(details, fmt.Sprintf("%.0f %s/s", snap.Rate(), snap.Unit))
	}
	if snap.TotalBytes > 0 {
		details = append(details, report.Bytes(snap.Bytes)+" of "+report.Bytes(snap.TotalBytes))
	} else if snap.Bytes > 0 {
		details = append(details, report.Bytes(snap.Bytes))
	}
	desc := snap.Name
	if len(details) > 0 {
		desc += " (" + strings.Join(details, ", ") + ")"
	}
	total := snap.Total
	if total <= 0 {
		total = -1 // not known: a spinner with the count and the rate
	}
	switch {
	case v.bar != nil && v.max > 0 && total != v.max:
		v.bar.ChangeMax64(total) // more manifests to read: index children
		v.max = total
	case v.bar != nil && v.max < 0 && total > 0:
		_ = v.bar.Exit() // the total became known: a bar instead of the spinner
		fmt.Fprint(v.w, "\r\033[K")
		v.bar = nil
	}
	if v.bar == nil {
		v.max, v.desc = total, desc
		v.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(v.w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetSpinnerChangeInterval(0), // redrawn here, never by its own goroutine
		)
	}
	done := snap.Done
	if total > 0 {
		done = min(done, total-1) // at its max the bar would end itself, out of turn
		if snap.Ended && snap.Done >= total {
			done = total
		}
	}
	if desc != v.desc {
		v.bar.Describe(desc)
		v.desc = desc
	}
	_ = v.bar.Set64(done)
}

// clear takes the bar's line off the terminal before others write; the next
// refresh draws it again. v.mu is held.
func (v *progressView) clear() {
	if v.bar != nil {
		fmt.Fprint(v.w, "\r\033[K")
	}
}

// progressLog writes the run's own lines where the progress bar may be drawn: the
// stages that ended are left as lines first, the current bar is cleared.
type progressLog struct {
	v *progressView
	w io.Writer
}

func (l *progressLog) Write(p []byte) (int, error) {
	l.v.mu.Lock()
	defer l.v.mu.Unlock()
	if l.v.bar != nil || l.v.tr.Len() > l.v.next {
		l.v.update(false)
		l.v.clear()
	}
	return l.w.Write(p)
}
