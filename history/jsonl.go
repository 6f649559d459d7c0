package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Line types of the JSON lines format (the "type" field). See FORMAT.md.
const (
	lineOp    = "op"
	lineEvent = "event"
)

type opLine struct {
	Type string `json:"type"`
	Op
}

type eventLine struct {
	Type string `json:"type"`
	Event
}

// Write writes h in the JSON lines format: a header line, then one line per
// op in ID order, then one line per event. The header's version is always
// FormatVersion.
func Write(w io.Writer, h *History) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	hdr := h.Header
	hdr.Version = FormatVersion
	if err := enc.Encode(hdr); err != nil {
		return fmt.Errorf("history: write header: %w", err)
	}
	for i := range h.Ops {
		if err := enc.Encode(opLine{Type: lineOp, Op: h.Ops[i]}); err != nil {
			return fmt.Errorf("history: write op %d: %w", i, err)
		}
	}
	for i := range h.Events {
		if err := enc.Encode(eventLine{Type: lineEvent, Event: h.Events[i]}); err != nil {
			return fmt.Errorf("history: write event %d: %w", i, err)
		}
	}
	return bw.Flush()
}

// ReadError is returned by Read for malformed input. Line counts from 1.
type ReadError struct {
	Line int
	Err  error
}

func (e *ReadError) Error() string { return fmt.Sprintf("history: line %d: %v", e.Line, e.Err) }

func (e *ReadError) Unwrap() error { return e.Err }

// ErrVersion is wrapped by Read's error when the header names a format
// version this package does not read.
var ErrVersion = errors.New("unsupported history format version")

// Read reads a history in the JSON lines format and validates it (see
// History.Validate). Blank lines are skipped; anything else that is not a
// well-formed line of the format is an error naming its line. Unknown fields
// are errors, so a misspelt field is not silently dropped.
func Read(r io.Reader) (*History, error) {
	br := bufio.NewReader(r)
	h := &History{}
	v := newValidator()
	seenHeader := false
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, &ReadError{Line: lineNo, Err: err}
		}
		eof := err == io.EOF
		line = bytes.TrimSpace(line)
		if len(line) > 0 {
			if !seenHeader {
				if err := readHeader(line, &h.Header); err != nil {
					return nil, &ReadError{Line: lineNo, Err: err}
				}
				seenHeader = true
			} else if err := readLine(line, h, v); err != nil {
				return nil, &ReadError{Line: lineNo, Err: err}
			}
		}
		if eof {
			break
		}
	}
	if !seenHeader {
		return nil, errors.New("history: empty input: want a header line")
	}
	return h, nil
}

func readHeader(line []byte, hdr *Header) error {
	var probe struct {
		Version *int `json:"memstore_history"`
	}
	if err := json.Unmarshal(line, &probe); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if probe.Version == nil {
		return errors.New(`not a memstore history: the first line must be a header object with "memstore_history"`)
	}
	if *probe.Version != FormatVersion {
		return fmt.Errorf("%w %d (this reader reads version %d)", ErrVersion, *probe.Version, FormatVersion)
	}
	return decodeStrict(line, hdr)
}

func readLine(line []byte, h *History, v *validator) error {
	var probe struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(line, &probe); err != nil {
		return err
	}
	switch probe.Type {
	case lineOp:
		var l opLine
		if err := decodeStrict(line, &l); err != nil {
			return err
		}
		if err := v.op(len(h.Ops), &l.Op); err != nil {
			return err
		}
		h.Ops = append(h.Ops, l.Op)
	case lineEvent:
		var l eventLine
		if err := decodeStrict(line, &l); err != nil {
			return err
		}
		if err := validateEvent(len(h.Events), &l.Event); err != nil {
			return err
		}
		h.Events = append(h.Events, l.Event)
	case "":
		return errors.New(`missing "type" ("op" or "event")`)
	default:
		return fmt.Errorf(`unknown line type %q (want "op" or "event")`, probe.Type)
	}
	return nil
}

func decodeStrict(line []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return err
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}
