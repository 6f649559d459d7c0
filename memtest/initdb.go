package memtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// initdbArgs are the cluster's settings fixed at initdb time: trust for
// local connections (the socket lives in a private directory), superuser
// "postgres", UTF-8 in the C locale (byte-wise collation, like Redis), and
// no fsync of the new files.
var initdbArgs = []string{"-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"}

// initData creates a cluster's data directory at data. initdb takes a second
// or two of CPU, and many times that on a loaded machine, while a copy of its
// result takes a tenth of that; so the first run keeps a copy in the user's
// cache directory, keyed by the PostgreSQL binaries and the arguments, and
// later runs copy it. Any trouble with the cache falls back to initdb.
func initData(ctx context.Context, bin, data string, cred *syscall.Credential) error {
	cached := initdbCachePath(bin)
	if cached != "" {
		if _, err := os.Stat(filepath.Join(cached, "PG_VERSION")); err == nil {
			if err := copyTree(cached, data, cred); err == nil {
				return nil
			}
			os.RemoveAll(data)
		}
	}
	if err := initdb(ctx, bin, data, cred); err != nil {
		return err
	}
	if cached != "" {
		saveInitdbCache(data, cached)
	}
	return nil
}

func initdb(ctx context.Context, bin, data string, cred *syscall.Credential) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), append([]string{"-D", data}, initdbArgs...)...)
	cmd.Dir = filepath.Dir(data)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	p, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	<-p.exited
	if p.err != nil {
		return fmt.Errorf("initdb %s: %w\n%s", data, p.err, out.String())
	}
	return nil
}

// initdbCachePath is where the data directory made by these binaries with
// initdbArgs is kept, or "" without a cache directory. The key changes when
// the binaries are upgraded (their size or time changes) or the arguments do.
func initdbCachePath(bin string) string {
	root, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	h := sha256.New()
	fmt.Fprintln(h, bin, strings.Join(initdbArgs, " "))
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(bin, name))
		if err != nil {
			return ""
		}
		fmt.Fprintln(h, name, fi.Size(), fi.ModTime().UnixNano())
	}
	return filepath.Join(root, "memstore", "memtest", "pgdata-"+hex.EncodeToString(h.Sum(nil))[:16])
}

// saveInitdbCache copies a fresh data directory into the cache. The copy is
// made under a temporary name and renamed, so a reader never sees half of
// one; when two binaries race, the second rename fails and its copy goes.
func saveInitdbCache(data, cached string) {
	root := filepath.Dir(cached)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return
	}
	removeOldTemps(root)
	tmp, err := os.MkdirTemp(root, "tmp-")
	if err != nil {
		return
	}
	defer os.RemoveAll(tmp)
	if err := copyTree(data, filepath.Join(tmp, "data"), nil); err != nil {
		return
	}
	_ = os.Rename(filepath.Join(tmp, "data"), cached)
}

// removeOldTemps removes what saveInitdbCache left when its process died.
func removeOldTemps(root string) {
	temps, _ := filepath.Glob(filepath.Join(root, "tmp-*"))
	for _, t := range temps {
		if fi, err := os.Stat(t); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(t)
		}
	}
}

// copyTree copies the directory src to dst (which must not exist) with the
// same modes, owned by cred's user when cred is not nil. A data directory
// holds only directories and regular files.
func copyTree(src, dst string, cred *syscall.Credential) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(path, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("copy %s: not a regular file or directory", path)
		}
		if cred != nil {
			return os.Lchown(target, int(cred.Uid), int(cred.Gid))
		}
		return nil
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
