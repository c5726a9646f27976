// Command interop checks files written by Gavel's Python chain package with an independent
// implementation: golang.org/x/mod/sumdb/note (signed notes, vkeys) and sumdb/tlog (RFC 6962
// hashing, tiles, record and tree proofs), plus a few lines of crypto/ed25519 for
// cosignature/v1 (type 0x04), which sumdb/note does not know.
//
// Usage: interop <dir>. The directory holds:
//
//	log.vkey              the log's vkey
//	cosigners.vkeys       one cosignature/v1 vkey per line
//	checkpoint            the latest signed checkpoint, with cosignatures
//	tile/...              tiles and entry bundles in the C2SP tlog-tiles layout
//	proofs.json           inclusion and consistency proofs to check (see type Proofs)
//	receipt.tlog-proof    a C2SP tlog-proof receipt, and receipt.entry its entry
//
// It prints OK and exits 0 if every check passes, or prints the first failure and exits 1.
//
// Usage: interop evidence <dir>, for a lot's evidence package (gavel evidence): the quorum
// from its policy, both checkpoints' log signature and cosignatures (keys/log.vkey,
// keys/notaries.vkeys), every entries/<seq>.entry's receipt against the package's checkpoint,
// and the consistency proof from that checkpoint to latest-checkpoint.
//
// Build it without network access: GO111MODULE=off GOPATH=/usr/share/gocode go build.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Proofs lists what Python produced, to be checked here.
type Proofs struct {
	MinCosignatures int `json:"min_cosignatures"`
	Trees           []struct {
		Size int64  `json:"size"`
		Root string `json:"root"`
	} `json:"trees"`
	Inclusion []struct {
		Index int64    `json:"index"`
		Size  int64    `json:"size"`
		Proof []string `json:"proof"`
	} `json:"inclusion"`
	Consistency []struct {
		Size1 int64    `json:"size1"`
		Size2 int64    `json:"size2"`
		Proof []string `json:"proof"`
	} `json:"consistency"`
}

type cosigner struct {
	name string
	id   uint32
	key  ed25519.PublicKey
}

var dir string

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func read(name string) []byte {
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		fail("read %s: %v", name, err)
	}
	return data
}

func decodeHash(text string) tlog.Hash {
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(raw) != tlog.HashSize {
		fail("bad hash %q", text)
	}
	var h tlog.Hash
	copy(h[:], raw)
	return h
}

func decodeHashes(texts []string) []tlog.Hash {
	hashes := make([]tlog.Hash, len(texts))
	for i, text := range texts {
		hashes[i] = decodeHash(text)
	}
	return hashes
}

// parseCheckpoint parses the C2SP checkpoint body (origin, size, base64 root).
func parseCheckpoint(text string) (string, int64, tlog.Hash) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 3 || !strings.HasSuffix(text, "\n") {
		fail("checkpoint body has %d lines, want exactly 3", len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		fail("bad checkpoint size %q", lines[1])
	}
	return lines[0], size, decodeHash(lines[2])
}

func parseCosigner(vkey string) cosigner {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		fail("bad cosigner vkey %q", vkey)
	}
	id, err := strconv.ParseUint(parts[1], 16, 32)
	raw, err2 := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || err2 != nil || len(raw) != 33 || raw[0] != 0x04 {
		fail("bad cosigner vkey %q", vkey)
	}
	h := sha256.Sum256(append([]byte(parts[0]+"\n"), raw...))
	if binary.BigEndian.Uint32(h[:4]) != uint32(id) {
		fail("cosigner key id mismatch in %q", vkey)
	}
	return cosigner{parts[0], uint32(id), ed25519.PublicKey(raw[1:])}
}

// checkCosignatures verifies cosignature/v1 lines (tlog-cosignature) and counts the good ones.
func checkCosignatures(n *note.Note, cosigners []cosigner) int {
	good := 0
	for _, sig := range n.UnverifiedSigs {
		for _, c := range cosigners {
			if sig.Name != c.name || sig.Hash != c.id {
				continue
			}
			raw, err := base64.StdEncoding.DecodeString(sig.Base64)
			if err != nil || len(raw) != 4+8+64 {
				fail("cosignature by %s has the wrong length", c.name)
			}
			timestamp := binary.BigEndian.Uint64(raw[4:12])
			message := fmt.Sprintf("cosignature/v1\ntime %d\n%s", timestamp, n.Text)
			if !ed25519.Verify(c.key, []byte(message), raw[12:]) {
				fail("cosignature by %s does not verify", c.name)
			}
			good++
		}
	}
	return good
}

// tileReader serves tlog.Tile requests from the C2SP layout on disk: sumdb's
// tile/8/<L>/<N> becomes tile/<L>/<N>.
type tileReader struct{}

func (tileReader) Height() int { return 8 }

func (tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		path := "tile/" + strings.TrimPrefix(t.Path(), "tile/8/")
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// entries reads every entry of a tree of the given size from the entry bundles.
func entries(size int64) [][]byte {
	var all [][]byte
	for n := int64(0); n*256 < size; n++ {
		width := size - n*256
		if width > 256 {
			width = 256
		}
		path := "tile/entries/" + strings.TrimPrefix(tlog.Tile{H: 8, L: 0, N: n, W: int(width)}.Path(), "tile/8/0/")
		data := read(path)
		for i := int64(0); i < width; i++ {
			if len(data) < 2 {
				fail("%s: short bundle", path)
			}
			length := int(binary.BigEndian.Uint16(data))
			if len(data) < 2+length {
				fail("%s: short entry", path)
			}
			all = append(all, data[2:2+length])
			data = data[2+length:]
		}
		if len(data) != 0 {
			fail("%s: trailing data", path)
		}
	}
	return all
}

func checkReceipt(verifiers note.Verifiers, cosigners []cosigner, minCosignatures int) {
	checkReceiptFiles("receipt.tlog-proof", "receipt.entry", verifiers, cosigners, minCosignatures)
}

// checkReceiptFiles verifies one tlog-proof file against its entry file; returns the text of
// the checkpoint the receipt carries.
func checkReceiptFiles(proofName, entryName string, verifiers note.Verifiers, cosigners []cosigner, minCosignatures int) string {
	data := read(proofName)
	split := bytes.Index(data, []byte("\n\n"))
	if split < 0 {
		fail("receipt: no blank line")
	}
	lines := strings.Split(string(data[:split]), "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		fail("receipt: bad header %q", lines[0])
	}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		fail("receipt: no index line")
	}
	index, err := strconv.ParseInt(strings.TrimPrefix(lines[0], "index "), 10, 64)
	if err != nil {
		fail("receipt: bad index")
	}
	proof := decodeHashes(lines[1:])
	n, err := note.Open(data[split+2:], verifiers)
	if err != nil {
		fail("receipt checkpoint: %v", err)
	}
	if got := checkCosignatures(n, cosigners); got < minCosignatures {
		fail("receipt checkpoint has %d good cosignatures, want %d", got, minCosignatures)
	}
	_, size, root := parseCheckpoint(n.Text)
	leaf := tlog.RecordHash(read(entryName))
	if err := tlog.CheckRecord(tlog.RecordProof(proof), size, root, index, leaf); err != nil {
		fail("receipt inclusion: %s: %v", proofName, err)
	}
	return n.Text
}

// policyQuorum reads the threshold of the quorum group of a C2SP tlog-policy file (lines
// "group <name> <k|all|any> <members...>" and "quorum <name>").
func policyQuorum(text string) int {
	groups := map[string]int{}
	quorum := ""
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 3 && fields[0] == "group" {
			switch fields[2] {
			case "all":
				groups[fields[1]] = len(fields) - 3
			case "any":
				groups[fields[1]] = 1
			default:
				k, err := strconv.Atoi(fields[2])
				if err != nil {
					fail("policy: bad group threshold %q", fields[2])
				}
				groups[fields[1]] = k
			}
		}
		if len(fields) == 2 && fields[0] == "quorum" {
			quorum = fields[1]
		}
	}
	if quorum == "" || quorum == "none" {
		return 0
	}
	k, ok := groups[quorum]
	if !ok {
		fail("policy: quorum names no group (%q)", quorum)
	}
	return k
}

// openCheckpoint opens a signed checkpoint file and checks its cosignature quorum.
func openCheckpoint(name string, verifiers note.Verifiers, cosigners []cosigner, minCosignatures int) (*note.Note, int64, tlog.Hash) {
	n, err := note.Open(read(name), verifiers)
	if err != nil {
		fail("%s: %v", name, err)
	}
	if got := checkCosignatures(n, cosigners); got < minCosignatures {
		fail("%s has %d good cosignatures, want %d", name, got, minCosignatures)
	}
	_, size, root := parseCheckpoint(n.Text)
	return n, size, root
}

func checkEvidence() {
	verifier, err := note.NewVerifier(strings.TrimSpace(string(read("keys/log.vkey"))))
	if err != nil {
		fail("keys/log.vkey: %v", err)
	}
	verifiers := note.VerifierList(verifier)
	var cosigners []cosigner
	for _, line := range strings.Split(strings.TrimSpace(string(read("keys/notaries.vkeys"))), "\n") {
		if line != "" {
			cosigners = append(cosigners, parseCosigner(line))
		}
	}
	minCosignatures := policyQuorum(string(read("policy")))
	anchor, size, root := openCheckpoint("checkpoint", verifiers, cosigners, minCosignatures)
	_, latestSize, latestRoot := openCheckpoint("latest-checkpoint", verifiers, cosigners, minCosignatures)

	names, err := filepath.Glob(filepath.Join(dir, "entries", "*.entry"))
	if err != nil || len(names) == 0 {
		fail("no entries/*.entry")
	}
	for _, path := range names {
		base := strings.TrimSuffix(filepath.Base(path), ".entry")
		text := checkReceiptFiles("entries/"+base+".tlog-proof", "entries/"+base+".entry", verifiers, cosigners, minCosignatures)
		if text != anchor.Text {
			fail("entries/%s.tlog-proof is against another checkpoint", base)
		}
	}

	lines := strings.Split(strings.TrimSuffix(string(read("consistency")), "\n"), "\n")
	if len(lines) < 3 || lines[0] != "gavel/consistency/v1" || lines[1] != fmt.Sprintf("old %d", size) || lines[2] != fmt.Sprintf("new %d", latestSize) {
		fail("consistency: bad header")
	}
	proof := tlog.TreeProof(decodeHashes(lines[3:]))
	if err := tlog.CheckTree(proof, latestSize, latestRoot, size, root); err != nil {
		fail("consistency %d -> %d: %v", size, latestSize, err)
	}
	fmt.Printf("OK evidence entries=%d size=%d latest=%d quorum=%d\n", len(names), size, latestSize, minCosignatures)
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "evidence" {
		dir = os.Args[2]
		checkEvidence()
		return
	}
	if len(os.Args) != 2 {
		fail("usage: interop <dir> | interop evidence <dir>")
	}
	dir = os.Args[1]

	var proofs Proofs
	if err := json.Unmarshal(read("proofs.json"), &proofs); err != nil {
		fail("proofs.json: %v", err)
	}

	// 1. The checkpoint's log signature, with sumdb/note.
	verifier, err := note.NewVerifier(strings.TrimSpace(string(read("log.vkey"))))
	if err != nil {
		fail("log vkey: %v", err)
	}
	verifiers := note.VerifierList(verifier)
	n, err := note.Open(read("checkpoint"), verifiers)
	if err != nil {
		fail("checkpoint: %v", err)
	}
	origin, size, root := parseCheckpoint(n.Text)
	if origin != verifier.Name() {
		fail("origin %q is not the key name %q", origin, verifier.Name())
	}

	// 2. Cosignatures (type 0x04) with crypto/ed25519.
	var cosigners []cosigner
	for _, line := range strings.Split(strings.TrimSpace(string(read("cosigners.vkeys"))), "\n") {
		cosigners = append(cosigners, parseCosigner(line))
	}
	if got := checkCosignatures(n, cosigners); got < proofs.MinCosignatures {
		fail("checkpoint has %d good cosignatures, want %d", got, proofs.MinCosignatures)
	}

	// 3. Tiles: TileHashReader authenticates every tile it reads against the tree hash.
	tree := tlog.Tree{N: size, Hash: root}
	reader := tlog.TileHashReader(tree, tileReader{})
	treeHash, err := tlog.TreeHash(size, reader)
	if err != nil || treeHash != root {
		fail("tree hash from tiles: %v (%v != %v)", err, treeHash, root)
	}
	for _, t := range proofs.Trees {
		old := tlog.Tree{N: t.Size, Hash: decodeHash(t.Root)}
		h, err := tlog.TreeHash(t.Size, tlog.TileHashReader(old, tileReader{}))
		if err != nil || h != old.Hash {
			fail("tree hash of size %d from its partial tiles: %v", t.Size, err)
		}
		p, err := tlog.ProveTree(size, t.Size, reader)
		if err != nil {
			fail("ProveTree(%d, %d): %v", size, t.Size, err)
		}
		if err := tlog.CheckTree(p, size, root, t.Size, old.Hash); err != nil {
			fail("tree %d is not a prefix of the checkpoint: %v", t.Size, err)
		}
	}

	// 4. Entry bundles: every entry hashes to its level-0 tile hash.
	all := entries(size)
	if int64(len(all)) != size {
		fail("read %d entries, want %d", len(all), size)
	}
	indexes := make([]int64, size)
	for i := range indexes {
		indexes[i] = tlog.StoredHashIndex(0, int64(i))
	}
	leafHashes, err := reader.ReadHashes(indexes)
	if err != nil {
		fail("leaf hashes from tiles: %v", err)
	}
	for i, entry := range all {
		if tlog.RecordHash(entry) != leafHashes[i] {
			fail("entry %d does not hash to its tile hash", i)
		}
	}

	// 5. Inclusion proofs: equal to sumdb's and accepted by CheckRecord.
	for _, p := range proofs.Inclusion {
		ours := tlog.RecordProof(decodeHashes(p.Proof))
		treeRoot := root
		if p.Size != size {
			treeRoot, err = tlog.TreeHash(p.Size, reader)
			if err != nil {
				fail("TreeHash(%d): %v", p.Size, err)
			}
		}
		if err := tlog.CheckRecord(ours, p.Size, treeRoot, p.Index, tlog.RecordHash(all[p.Index])); err != nil {
			fail("inclusion proof of %d in %d: %v", p.Index, p.Size, err)
		}
		theirs, err := tlog.ProveRecord(p.Size, p.Index, reader)
		if err != nil || len(theirs) != len(ours) {
			fail("ProveRecord(%d, %d): %v", p.Size, p.Index, err)
		}
		for i := range ours {
			if ours[i] != theirs[i] {
				fail("inclusion proof of %d in %d differs from sumdb's at %d", p.Index, p.Size, i)
			}
		}
	}

	// 6. Consistency proofs: equal to sumdb's and accepted by CheckTree.
	for _, p := range proofs.Consistency {
		ours := tlog.TreeProof(decodeHashes(p.Proof))
		root1, err1 := tlog.TreeHash(p.Size1, reader)
		root2, err2 := tlog.TreeHash(p.Size2, reader)
		if err1 != nil || err2 != nil {
			fail("TreeHash: %v %v", err1, err2)
		}
		if err := tlog.CheckTree(ours, p.Size2, root2, p.Size1, root1); err != nil {
			fail("consistency proof %d -> %d: %v", p.Size1, p.Size2, err)
		}
		theirs, err := tlog.ProveTree(p.Size2, p.Size1, reader)
		if err != nil || len(theirs) != len(ours) {
			fail("ProveTree(%d, %d): %v", p.Size2, p.Size1, err)
		}
		for i := range ours {
			if ours[i] != theirs[i] {
				fail("consistency proof %d -> %d differs from sumdb's at %d", p.Size1, p.Size2, i)
			}
		}
	}

	// 7. The receipt, parsed here from the tlog-proof text.
	checkReceipt(verifiers, cosigners, proofs.MinCosignatures)

	fmt.Printf("OK size=%d root=%s entries=%d inclusion=%d consistency=%d trees=%d\n",
		size, hex.EncodeToString(root[:]), len(all), len(proofs.Inclusion), len(proofs.Consistency), len(proofs.Trees))
}
