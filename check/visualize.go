package check

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/anishathalye/porcupine"

	"github.com/memstore/memstore/history"
)

// visualMaxOps is how many operations of a key Visualize draws at most when
// the key is not Illegal: porcupine's search is exponential in the worst
// case, and a timeline of thousands of operations helps nobody.
const visualMaxOps = 500

// Visualize writes porcupine's HTML timeline of one key: its operations, the
// linearization porcupine finds (or the longest partial ones, when there is
// none), and the history's events (fault windows, phases) as annotations.
//
// For an Illegal key it draws the segment that fails: from the last
// quiescent point before the failing operation (where the possible states of
// the register are known exactly, and shown as the initial state) to that
// operation. For other keys it draws the key from the start, up to the
// first quiescent point after a few hundred operations. The operations drawn
// are those the checker uses (failed writes, failed and unknown reads, and
// unknown writes nobody observed are left out); unknown writes that may
// still apply are drawn as never returning and may be left out of the
// linearization.
//
// The verdict is the checker's; the picture is porcupine's, run for at most
// opts.VisualizeTimeout. The picture can show an order for a segment that
// the checker rules out: when unknown writes from before the segment carry
// over into it, or when the checker failed at a write because a later read
// (outside the segment) needs the value that write would hide. The
// checker's verdict stands. opts may be nil.
func Visualize(w io.Writer, h *history.History, key string, opts *Options) error {
	o := opts.withDefaults()
	if err := h.Validate(); err != nil {
		return fmt.Errorf("check: invalid history: %w", err)
	}
	var ops []*history.Op
	for i := range h.Ops {
		if h.Ops[i].Key == key {
			ops = append(ops, &h.Ops[i])
		}
	}
	if len(ops) == 0 {
		return fmt.Errorf("check: no operations on key %q", key)
	}
	km := prepare(ops)
	lr := linearize(&km, o.limits(true))
	if lr.verdict == Illegal {
		lr = blame(&km, lr, o.limits(true))
	}

	var from, to int64 // the window: ops called in (from, to]
	init := []int32{0}
	var note string
	if lr.verdict == Illegal {
		to = lr.failTime
		if r := km.ops[lr.failed].ret; r != never {
			to = max(to, r)
		}
		// Start at the latest quiescent point that leaves some context
		// before the failure.
		c := lr.cuts[0]
		for i := len(lr.cuts) - 1; i >= 0; i-- {
			if calledIn(km.ops, lr.cuts[i].time, to) >= visualContext {
				c = lr.cuts[i]
				break
			}
		}
		from, init = c.time, c.states
		note = fmt.Sprintf("op %d cannot be linearized", km.ops[lr.failed].id)
	} else {
		from, to = -1, prefixCut(km.ops, visualMaxOps)
	}

	var win []mop
	end := int64(0)
	for _, m := range km.ops {
		carried := m.call <= from && (m.kind == mPool || m.ret == never)
		if carried || m.call > from && m.call <= to {
			win = append(win, m)
			end = max(end, m.call)
			if m.ret != never {
				end = max(end, m.ret)
			}
		}
	}
	byID := make(map[int]*history.Op, len(ops))
	for _, op := range ops {
		byID[op.ID] = op
	}
	clients := denseClients(win, byID)
	failed := -1 // index in pops of the op no order explains
	pops := make([]porcupine.Operation, len(win))
	for i, m := range win {
		ret, maybe := m.ret, false
		if ret == never {
			ret, maybe = end+1, true
		}
		call := m.call
		if call <= from {
			call = from + 1 // carried over: available from the window's start
		}
		op := byID[m.id]
		pops[i] = porcupine.Operation{
			ClientId: clients[clientOf(op)],
			Input:    pin{m: m, maybe: maybe, desc: boxWords(op)},
			Call:     call,
			Return:   ret,
			Metadata: fmt.Sprintf("op %d, client %s, %s, %s–%s%s", op.ID, clientName(op), op.Outcome,
				secondsText(op.Call), secondsText(op.Return), errSuffix(op)),
		}
		if lr.verdict == Illegal && m.id == km.ops[lr.failed].id {
			failed = i
		}
	}
	model := registerModel(km.values, km.bottom, init)
	_, info := porcupine.CheckOperationsVerbose(model, pops, o.VisualizeTimeout)

	var notes []porcupine.Annotation
	for _, ev := range h.Events {
		if ev.End < from || ev.Start > end+1 || ev.Kind == history.Step {
			continue // steps would bury the timeline
		}
		color := "#dde4ee"
		if ev.Kind == history.Fault {
			color = "#f6c6c0"
		}
		notes = append(notes, porcupine.Annotation{
			Tag:             string(ev.Kind),
			Start:           max(ev.Start, from+1),
			End:             min(ev.End, end+1),
			Description:     ev.Name,
			Details:         ev.Detail,
			BackgroundColor: color,
		})
	}
	if note != "" {
		notes = append(notes, porcupine.Annotation{
			Tag: "checker", Start: lr.failTime, End: lr.failTime,
			Description: note, BackgroundColor: "#f3a3a3",
		})
	}
	info.AddAnnotations(notes)
	var doc bytes.Buffer
	if err := porcupine.Visualize(model, info, &doc); err != nil {
		return err
	}
	rows := make([]string, len(clients))
	for c, i := range clients {
		rows[i] = clientLabel(c)
	}
	failedID := -1
	if failed >= 0 {
		failedID = win[failed].id
	}
	return annotate(w, doc.Bytes(), timelineData{Rows: rows, Failed: failed, FailedOp: failedID})
}

// timelineData is what annotate's script needs: the label of each of
// porcupine's rows (the client IDs of the history, in row order), and the
// index among porcupine's operations of the one no order explains (-1:
// none) and its history ID.
type timelineData struct {
	Rows     []string `json:"rows"`
	Failed   int      `json:"failed"`
	FailedOp int      `json:"failed_op"`
}

// annotate adds to porcupine's document a script that runs once it has
// drawn: it labels the rows with the history's client IDs (porcupine
// numbers them 0, 1, 2 ...), outlines the operation no order explains in
// red and scrolls it into the middle of the view, so that a static view (a
// screenshot, a printout) shows the failure rather than the start of the
// segment; and it widens porcupine's legend, whose "jump to first error"
// is cut off in fonts wider than Helvetica.
func annotate(w io.Writer, doc []byte, d timelineData) error {
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	i := bytes.LastIndex(doc, []byte("</body>"))
	if i < 0 {
		return errors.New("check: porcupine's timeline has no </body>")
	}
	var b bytes.Buffer
	b.Write(doc[:i])
	b.WriteString("<style>" + annotateCSS + "</style>\n<script>\nconst memstoreTimeline = ")
	b.Write(data)
	b.WriteString(";\n" + annotateJS + "</script>\n")
	b.Write(doc[i:])
	_, err = w.Write(b.Bytes())
	return err
}

const annotateCSS = `.memstore-failed { fill: none; stroke: #d92d20; stroke-width: 3; pointer-events: none; }
.memstore-strip { fill: #fff; opacity: .95; }
.memstore-row { font-weight: 600; }
#calc { position: absolute; overflow: hidden; }`

// annotateJS is written against porcupine v1.3's drawing (index.js): the
// first group of its SVG holds the row labels, in row order; each
// operation has a transparent target rectangle with data-partition and
// data-index. If porcupine draws otherwise, the script changes nothing.
const annotateJS = `(function () {
  'use strict'
  const d = memstoreTimeline
  const ns = 'http://www.w3.org/2000/svg'
  const svg = document.querySelector('#canvas svg')
  if (!svg) return
  const set = (el, attrs) => { for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v) }
  const legend = document.querySelector('#legend svg')
  if (legend) set(legend, {width: 760, viewBox: '0 0 760 20'})
  // The height of the drawing, for a frame that wants to fit it.
  document.documentElement.dataset.height = Math.ceil(svg.getBoundingClientRect().bottom + window.scrollY + 24)
  const bg = svg.querySelector(':scope > g:first-of-type')
  if (!bg) return
  const labels = Array.from(bg.querySelectorAll(':scope > text'))
  d.rows.forEach((label, i) => {
    if (i < labels.length) {
      labels[i].textContent = label
      labels[i].classList.add('memstore-row')
    }
  })
  // Keep the row labels in view when the frame scrolls sideways: on a
  // white strip as wide as the label column, moved with the scroll.
  const axis = bg.querySelector(':scope > line')
  if (axis && labels.length > 0) {
    const pinned = document.createElementNS(ns, 'g')
    pinned.setAttribute('pointer-events', 'none')
    const strip = document.createElementNS(ns, 'rect')
    // From the page's left edge (the body's margin too) to the time axis.
    const left = svg.getBoundingClientRect().left + window.scrollX
    set(strip, {x: -left, y: 0, width: left + Number(axis.getAttribute('x1')) - 2, height: svg.getAttribute('height'), class: 'memstore-strip'})
    pinned.appendChild(strip)
    for (const l of labels) pinned.appendChild(l)
    svg.appendChild(pinned)
    const follow = () => pinned.setAttribute('transform', 'translate(' + window.scrollX + ',0)')
    window.addEventListener('scroll', follow)
    follow()
  }
  if (d.failed < 0) return
  const target = svg.querySelector('rect.target-rect[data-partition="0"][data-index="' + d.failed + '"]')
  if (!target) return
  const x = Number(target.getAttribute('x'))
  const y = Number(target.getAttribute('y'))
  const w = Number(target.getAttribute('width'))
  const h = Number(target.getAttribute('height'))
  const box = document.createElementNS(ns, 'rect')
  set(box, {x: x - 3, y: y - 3, width: w + 6, height: h + 6, rx: 6, ry: 6, class: 'memstore-failed'})
  const title = document.createElementNS(ns, 'title')
  title.textContent = 'op ' + d.failed_op + ': no order of the operations explains it'
  box.appendChild(title)
  svg.insertBefore(box, svg.lastElementChild)
  // Bring it to the middle of the view, scrolling down only as far as it
  // takes, now and whenever the frame is resized (a folded section
  // opened, the report's frame fitted to the drawing).
  const centre = () => window.scrollTo({left: Math.max(0, x + w / 2 - window.innerWidth / 2), top: Math.max(0, y + h + 40 - window.innerHeight)})
  centre()
  window.addEventListener('load', centre)
  window.addEventListener('resize', centre)
})()
`

// visualContext is how many operations Visualize tries to draw before the
// failure of an Illegal key.
const visualContext = 20

// calledIn counts the ops called in (from, to].
func calledIn(ops []mop, from, to int64) int {
	n := 0
	for _, m := range ops {
		if m.call > from && m.call <= to {
			n++
		}
	}
	return n
}

// prefixCut returns the time of the first quiescent point after limit ops
// (the end of the history if there is none), ignoring ops that never return.
func prefixCut(ops []mop, limit int) int64 {
	idx := make([]int, len(ops))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return ops[idx[a]].call < ops[idx[b]].call })
	busyUntil := int64(-1)
	for n, i := range idx {
		if n >= limit && ops[i].call > busyUntil {
			return busyUntil
		}
		if ops[i].ret != never {
			busyUntil = max(busyUntil, ops[i].ret)
		}
		busyUntil = max(busyUntil, ops[i].call)
	}
	return never - 1
}

// clientLabel is a client's row label: its ID, with its process when it
// ran in a worker process ("2/6"), as the report's tables write it.
func clientLabel(c clientID) string {
	if c[0] != 0 {
		return fmt.Sprintf("%d/%d", c[0], c[1])
	}
	return strconv.Itoa(c[1])
}

// secondsText writes a time of the history (ns since its start) in
// seconds, to the tenth of a millisecond: 1.0816s.
func secondsText(ns int64) string {
	return strconv.FormatFloat(float64(ns)/1e9, 'f', 4, 64) + "s"
}

func errSuffix(op *history.Op) string {
	if op.Err == "" {
		return ""
	}
	return ": " + op.Err
}

// denseClients numbers the clients of the window 0, 1, 2, ... (porcupine
// draws one row per client id).
func denseClients(win []mop, byID map[int]*history.Op) map[clientID]int {
	var ids []clientID
	seen := make(map[clientID]bool)
	for _, m := range win {
		c := clientOf(byID[m.id])
		if !seen[c] {
			seen[c] = true
			ids = append(ids, c)
		}
	}
	sort.Slice(ids, func(i, j int) bool {
		if ids[i][0] != ids[j][0] {
			return ids[i][0] < ids[j][0]
		}
		return ids[i][1] < ids[j][1]
	})
	m := make(map[clientID]int, len(ids))
	for i, c := range ids {
		m[c] = i
	}
	return m
}

// pin is a porcupine input: one register operation; maybe marks an unknown
// write that may also never apply. desc is what its box says, from the
// history's operation: the search merges the values nobody read into one
// state (see prepare), whose text would be empty.
type pin struct {
	m     mop
	maybe bool
	desc  string
}

// boxWords is the text of op's box in the timeline: its kind and value,
// `set "c6-1"`, `get → "c6-1"`, `get → absent`, `delete`.
func boxWords(op *history.Op) string {
	q := strconv.Quote
	switch op.Kind {
	case history.Set:
		return "set " + q(op.Value)
	case history.Delete:
		return "delete"
	case history.CAS:
		exp := "absent"
		if op.ExpectFound {
			exp = q(op.Expect)
		}
		if op.Conflict && op.Outcome == history.OK {
			return "cas conflict: ≠ " + exp
		}
		return "cas " + exp + " → " + q(op.Value)
	}
	d := string(op.Kind)
	switch {
	case op.Outcome != history.OK:
		d += " → " + string(op.Outcome)
	case op.Found:
		d += " → " + q(op.Out)
	default:
		d += " → absent"
	}
	return d
}

// registerModel is the register as a porcupine model, starting in any of
// init. It has the same semantics as the search (model.go).
func registerModel(values []string, bottom int32, init []int32) porcupine.Model {
	state := func(s int32) string {
		switch {
		case s == 0:
			return "absent"
		case s == bottom:
			return "a value no read returned"
		}
		return strconv.Quote(values[s])
	}
	nm := porcupine.NondeterministicModel{
		Init: func() []interface{} {
			out := make([]interface{}, len(init))
			for i, s := range init {
				out[i] = s
			}
			return out
		},
		Step: func(st, input, _ interface{}) []interface{} {
			s, in := st.(int32), input.(pin)
			var next []interface{}
			switch in.m.kind {
			case mRead:
				if s == in.m.val {
					next = append(next, s)
				}
			case mConflict:
				if s != in.m.expect {
					next = append(next, s)
				}
			case mWrite:
				next = append(next, in.m.val)
			case mPool:
				next = append(next, int32(0))
			case mCAS:
				if s == in.m.expect {
					next = append(next, in.m.val)
				}
			}
			if in.maybe {
				next = append(next, s)
			}
			return next
		},
		DescribeOperation: func(input, _ interface{}) string {
			in := input.(pin)
			d := in.desc
			switch {
			case d != "":
			case in.m.kind == mRead:
				d = "get → " + state(in.m.val)
			case in.m.kind == mConflict:
				d = "cas conflict: ≠ " + state(in.m.expect)
			case in.m.kind == mWrite && in.m.val == 0, in.m.kind == mPool:
				d = "delete"
			case in.m.kind == mWrite:
				d = "set " + state(in.m.val)
			case in.m.kind == mCAS:
				d = "cas " + state(in.m.expect) + " → " + state(in.m.val)
			}
			if in.maybe {
				d += " (unknown: may never apply)"
			}
			return d
		},
		DescribeState: func(st interface{}) string { return state(st.(int32)) },
		DescribeOperationMetadata: func(md interface{}) string {
			if md == nil {
				return ""
			}
			return md.(string)
		},
	}
	return nm.ToModel()
}
