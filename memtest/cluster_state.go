package memtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// nodeLine is one line of CLUSTER NODES: one node as another sees it.
type nodeLine struct {
	id        string
	addr      string // ip:port@cport, as announced
	flags     string // comma-separated: myself, master, slave, fail?, fail, handshake, noaddr, ...
	master    string // the master's ID for a replica, "-" for a master
	epoch     int64
	connected bool
	slots     []string // "0-5460", "7", and "[7->-id]" (migrating) or "[7-<-id]" (importing)
}

func (l nodeLine) hasFlag(f string) bool { return slices.Contains(strings.Split(l.flags, ","), f) }

func (l nodeLine) role() string {
	if l.hasFlag("master") {
		return "master"
	}
	return "slave"
}

// failing reports the flags that say the node is unreachable or unknown.
func (l nodeLine) failing() bool {
	return l.hasFlag("fail") || l.hasFlag("fail?") || l.hasFlag("handshake") || l.hasFlag("noaddr")
}

func parseNodes(s string) ([]nodeLine, error) {
	var lines []nodeLine
	for raw := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
		f := strings.Fields(raw)
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES: bad line %q", raw)
		}
		epoch, err := strconv.ParseInt(f[6], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("CLUSTER NODES: bad config epoch in %q", raw)
		}
		lines = append(lines, nodeLine{
			id: f[0], addr: f[1], flags: f[2], master: f[3], epoch: epoch,
			connected: f[7] == "connected", slots: f[8:],
		})
	}
	return lines, nil
}

// view is the cluster as n sees it.
func (n *ClusterNode) view(ctx context.Context) ([]nodeLine, error) {
	s, err := n.admin.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("node %s: CLUSTER NODES: %w", n.Addr(), err)
	}
	return parseNodes(s)
}

// self is n as n sees itself.
func (n *ClusterNode) self(ctx context.Context) (nodeLine, error) {
	view, err := n.view(ctx)
	if err != nil {
		return nodeLine{}, err
	}
	for _, l := range view {
		if l.hasFlag("myself") {
			return l, nil
		}
	}
	return nodeLine{}, fmt.Errorf("node %s: CLUSTER NODES has no myself line", n.Addr())
}

// info returns the fields of an INFO section of n.
func (n *ClusterNode) info(ctx context.Context, section string) (map[string]string, error) {
	var (
		s   string
		err error
	)
	if section == "cluster" {
		s, err = n.admin.ClusterInfo(ctx).Result()
	} else {
		s, err = n.admin.Info(ctx, section).Result()
	}
	if err != nil {
		return nil, fmt.Errorf("node %s: INFO %s: %w", n.Addr(), section, err)
	}
	m := make(map[string]string)
	for line := range strings.SplitSeq(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}

// stateOK checks that n says cluster_state:ok with every slot served.
func (n *ClusterNode) stateOK(ctx context.Context) error {
	info, err := n.info(ctx, "cluster")
	if err != nil {
		return err
	}
	if info["cluster_state"] != "ok" {
		return fmt.Errorf("node %s: cluster_state:%s", n.Addr(), info["cluster_state"])
	}
	if got := info["cluster_slots_ok"]; got != strconv.Itoa(clusterSlots) {
		return fmt.Errorf("node %s: cluster_slots_ok:%s", n.Addr(), got)
	}
	return nil
}

// canonical is what a view says of who serves which slots and who
// replicates whom, for the nodes in ids, in a form two views can be
// compared by. What a node says of itself only (myself, the link state)
// is left out.
func canonical(view []nodeLine, ids map[string]bool) string {
	var out []string
	for _, l := range view {
		if ids[l.id] {
			out = append(out, l.id+" "+l.role()+" "+l.master+" "+strings.Join(l.slots, " "))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// views gets the view of every node in nodes, concurrently.
func views(ctx context.Context, nodes []*ClusterNode) ([][]nodeLine, error) {
	vs := make([][]nodeLine, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			if errs[i] = n.stateOK(ctx); errs[i] == nil {
				vs[i], errs[i] = n.view(ctx)
			}
		})
	}
	wg.Wait()
	return vs, errors.Join(errs...)
}

// healthy is WaitHealthy's check.
func (s *nodeSet) healthy(ctx context.Context) error {
	// The masters' offsets come first: a replica that has reached them has
	// everything written before the check began, even under load.
	offsets, err := s.masterOffsets(ctx)
	if err != nil {
		return err
	}
	vs, err := views(ctx, s.nodes)
	if err != nil {
		return err
	}
	ids := make(map[string]bool, len(s.nodes))
	for _, n := range s.nodes {
		ids[n.id] = true
	}
	ref := canonical(vs[0], ids)
	for i, view := range vs {
		n := s.nodes[i]
		if len(view) != len(s.nodes) {
			return fmt.Errorf("node %s knows %d nodes, want %d", n.Addr(), len(view), len(s.nodes))
		}
		for _, l := range view {
			if l.failing() || (!l.connected && !l.hasFlag("myself")) {
				return fmt.Errorf("node %s sees node %s as %s, %v", n.Addr(), l.addr, l.flags, map[bool]string{true: "connected", false: "disconnected"}[l.connected])
			}
			for _, sl := range l.slots {
				if strings.HasPrefix(sl, "[") {
					return fmt.Errorf("node %s: slot %s of node %s is migrating or importing", n.Addr(), sl, l.addr)
				}
			}
		}
		if got := canonical(view, ids); got != ref {
			return fmt.Errorf("nodes %s and %s disagree on the cluster:\n%s\n---\n%s", s.nodes[0].Addr(), n.Addr(), ref, got)
		}
		if err := n.slotsListAll(ctx, s.replicas); err != nil {
			return err
		}
	}
	byID := make(map[string]nodeLine)
	for _, l := range vs[0] {
		byID[l.id] = l
	}
	per := 1 + s.replicas
	for shard := range s.masters {
		group := s.nodes[shard*per : (shard+1)*per]
		var master *ClusterNode
		for _, n := range group {
			if byID[n.id].role() == "master" {
				if master != nil {
					return fmt.Errorf("shard %d has two masters, %s and %s", shard, master.Addr(), n.Addr())
				}
				master = n
			}
		}
		if master == nil {
			return fmt.Errorf("shard %d has no master", shard)
		}
		for _, n := range group {
			if n == master {
				continue
			}
			if got := byID[n.id].master; got != master.id {
				return fmt.Errorf("shard %d: node %s replicates %s, want %s", shard, n.Addr(), got, master.id)
			}
			if err := n.caughtUp(ctx, offsets[master]); err != nil {
				return err
			}
		}
	}
	return nil
}

// slotsListAll checks that n's CLUSTER SLOTS, from which go-redis loads its
// map of the cluster, lists a master and all its replicas for every range.
// (Raw: go-redis deprecates its ClusterSlots for CLUSTER SHARDS, which
// lists the replicas that CLUSTER SLOTS leaves out.)
func (n *ClusterNode) slotsListAll(ctx context.Context, replicas int) error {
	ranges, err := n.admin.Do(ctx, "CLUSTER", "SLOTS").Slice()
	if err != nil {
		return fmt.Errorf("node %s: CLUSTER SLOTS: %w", n.Addr(), err)
	}
	for _, r := range ranges {
		r, ok := r.([]any)
		if !ok || len(r) < 2 {
			return fmt.Errorf("node %s: CLUSTER SLOTS: bad range %v", n.Addr(), r)
		}
		if got := len(r) - 2; got != 1+replicas {
			return fmt.Errorf("node %s: CLUSTER SLOTS lists %d nodes for slots %v-%v, want %d", n.Addr(), got, r[0], r[1], 1+replicas)
		}
	}
	return nil
}

// masterOffsets reads the replication offset of every node that is a
// master by its own account.
func (s *nodeSet) masterOffsets(ctx context.Context) (map[*ClusterNode]int64, error) {
	offsets := make(map[*ClusterNode]int64)
	for _, n := range s.nodes {
		info, err := n.info(ctx, "replication")
		if err != nil {
			return nil, err
		}
		if info["role"] != "master" {
			continue
		}
		off, err := strconv.ParseInt(info["master_repl_offset"], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("node %s: bad master_repl_offset %q", n.Addr(), info["master_repl_offset"])
		}
		offsets[n] = off
	}
	return offsets, nil
}

// caughtUp checks that replica n has its link to its master up, no sync in
// progress, and has processed the stream up to offset.
func (n *ClusterNode) caughtUp(ctx context.Context, offset int64) error {
	info, err := n.info(ctx, "replication")
	if err != nil {
		return err
	}
	if info["role"] != "slave" || info["master_link_status"] != "up" || info["master_sync_in_progress"] != "0" {
		return fmt.Errorf("replica %s: role:%s master_link_status:%s master_sync_in_progress:%s",
			n.Addr(), info["role"], info["master_link_status"], info["master_sync_in_progress"])
	}
	got, err := strconv.ParseInt(info["slave_repl_offset"], 10, 64)
	if err != nil {
		return fmt.Errorf("replica %s: bad slave_repl_offset %q", n.Addr(), info["slave_repl_offset"])
	}
	if got < offset {
		return fmt.Errorf("replica %s at offset %d, its master at %d", n.Addr(), got, offset)
	}
	return nil
}

// promoted is KillMaster's check: every node but dead says the cluster is ok
// and agrees on who serves the slots, dead serves none, and a node of dead's
// shard has taken its place.
func (s *nodeSet) promoted(ctx context.Context, dead *ClusterNode) error {
	var live []*ClusterNode
	ids := make(map[string]bool)
	for _, n := range s.nodes {
		if n != dead {
			live = append(live, n)
			ids[n.id] = true
		}
	}
	vs, err := views(ctx, live)
	if err != nil {
		return err
	}
	ref := canonical(vs[0], ids)
	for i, view := range vs {
		for _, l := range view {
			if l.id == dead.id && len(l.slots) > 0 {
				return fmt.Errorf("node %s: the killed master %s still serves %v", live[i].Addr(), dead.Addr(), l.slots)
			}
		}
		if got := canonical(view, ids); got != ref {
			return fmt.Errorf("nodes %s and %s disagree on the cluster:\n%s\n---\n%s", live[0].Addr(), live[i].Addr(), ref, got)
		}
	}
	for _, l := range vs[0] {
		if l.role() != "master" || len(l.slots) == 0 {
			continue
		}
		for _, n := range live {
			if n.id == l.id && n.shard == dead.shard {
				return nil
			}
		}
	}
	return fmt.Errorf("no node of shard %d serves slots yet", dead.shard)
}

// isMaster checks that n is a master by its own account.
func (s *nodeSet) isMaster(ctx context.Context, n *ClusterNode) error {
	me, err := n.self(ctx)
	if err != nil {
		return err
	}
	if me.role() != "master" {
		return fmt.Errorf("node %s is still a %s", n.Addr(), me.role())
	}
	return nil
}

// syncedReplica picks a replica of master whose link is up.
func (s *nodeSet) syncedReplica(ctx context.Context, master *ClusterNode, replicas []*ClusterNode) (*ClusterNode, error) {
	var errs []error
	for _, r := range replicas {
		err := r.caughtUp(ctx, 0)
		if err == nil {
			return r, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no replica of %s in sync: %w", master.Addr(), errors.Join(errs...))
}

// crc16 is the CRC16-XMODEM of Redis Cluster's key hashing.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slotTags holds, for every slot, the shortest decimal number whose hash is
// that slot: the hash tag of a key in it.
var slotTags = sync.OnceValue(func() []string {
	tags := make([]string, clusterSlots)
	for left, i := clusterSlots, 0; left > 0; i++ {
		s := strconv.Itoa(i)
		if slot := crc16(s) % clusterSlots; tags[slot] == "" {
			tags[slot] = s
			left--
		}
	}
	return tags
})

// keyForSlot returns a hash tag (to put in braces) whose key hashes to slot.
func keyForSlot(slot int) string { return slotTags()[slot] }
